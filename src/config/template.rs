//! The commented default configuration printed by `roost config init` and written when a
//! config file does not exist yet. A test keeps it equal to `Config::default()`.

/// A complete configuration with every setting at its default, explained.
pub fn default_config_text() -> &'static str {
    DEFAULT_CONFIG
}

const DEFAULT_CONFIG: &str = r#"// roost configuration (RON). Every setting is shown with its default value.
// Edit it here or in the console (run `roost`), where Apply makes changes take effect.
(
    broker: (
        // Enable MQTT broker service on this computer. Off until the operator has
        // reviewed the settings; `roost serve` always runs the broker.
        enabled: false,
        // Enable TCP Server: MQTT over TCP (1883 by convention, 8883 with TLS).
        tcp: (
            enabled: true,
            bind: "0.0.0.0",
            port: 1883,
        ),
        // Enable WebSockets Server: clients address ws://host:port/path (wss:// with TLS).
        websockets: (
            enabled: false,
            bind: "0.0.0.0",
            port: 8080,
            path: "/mqtt",
            // Web pages (browser Origins such as "https://example.com") allowed to connect;
            // empty allows any. Clients that send no Origin (not browsers) are always allowed.
            allowed_origins: [],
        ),
        tls: (
            // Use encryption (TLS): clients must connect over a secure connection.
            enabled: false,
            // Require client certificate.
            require_client_certificate: false,
            // Accept specifically configured authorized client certificates only.
            authorized_only: false,
            // Trust any matching authorized client certificate, even if not issued by a trusted CA.
            trust_any_matching_authorized: false,
            // Host names and IP addresses of the server certificate roost makes.
            host_names: [
                "localhost",
                "127.0.0.1",
                "::1",
            ],
            // Use a client certificate's common name as the client's username.
            certificate_common_name_as_username: false,
        ),
        // Require client credentials: username and password must match one of `users`.
        require_credentials: false,
        // Seconds between updates of the $SYS/broker/... topics; 0 turns them off.
        sys_interval_secs: 10,
    ),
    // Enable persistent sessions and messages. Off: no session outlives its connection
    // (MQTT 5.0 clients are granted Session Expiry Interval 0; MQTT 3.1.1 clients with
    // Clean Session 0 still get one in memory, as MQTT-3.1.2-4 requires).
    persistence: (
        enabled: true,
        // Memory, DiskBuffered, DiskUnbuffered or DiskFaultTolerant.
        mode: Memory,
        // Where the disk store, keys and certificates are kept.
        data_dir: "roost-data",
    ),
    limits: (
        // Connections accepted at once; further sockets are closed.
        max_connections: 10000,
        // Largest packet accepted, in bytes.
        max_packet_size: 1048576,
        // QoS 1 and 2 messages in flight per client in each direction (Receive Maximum).
        max_inflight: 100,
        // Messages queued per offline or slow session (kept on disk in the disk modes);
        // QoS 0 messages are dropped first.
        max_queued_messages: 1000,
        // Topic aliases an MQTT 5 client may use towards the broker.
        max_topic_aliases: 32,
        // Highest keep alive granted, in seconds.
        max_keep_alive_secs: 60,
        // Seconds a new connection may take to send CONNECT.
        connect_timeout_secs: 10,
        // Highest session expiry interval granted to MQTT 5 clients, in seconds.
        max_session_expiry_secs: 604800,
        // Most levels a topic name or filter may have (a/b/c has 3). A filter with more is
        // refused in SUBACK; a topic name with more closes the publisher's connection.
        max_topic_levels: 200,
    ),
    // Users allowed to connect when credentials are required, with password hashes such as
    // (username: "sensor", password_hash: "$argon2id$..."): argon2id PHC strings, or
    // Mosquitto $7$ / $6$ hashes imported as they are (`roost user add|import-mosquitto`).
    // A client giving a username listed here must give its password even when credentials
    // are not required.
    users: [],
    // Topic permissions, as Mosquitto's acl_file (`roost acl import FILE`): rules such as
    // (access: Read, topic: "public/#") with access Read, Write, ReadWrite or Deny. A deny
    // rule wins; with any rule present, what no rule allows is refused. No rules: all allowed.
    acl: (
        // For clients without a username.
        anonymous: [],
        // Per username: {"alice": [(access: ReadWrite, topic: "alice/#")]}.
        users: {},
        // For every client; %u is the username, %c the client identifier.
        patterns: [],
    ),
    certificates: (
        // PEM files of the Certificate Authority (its key lets it issue client certificates).
        ca_certificate: None,
        ca_private_key: None,
        // PEM files of the Server Certificate used for TLS.
        server_certificate: None,
        server_private_key: None,
        // Client Certificates: (thumbprint: "<sha-256 hex>", subject: "CN=...", status: Authorized)
        // or status: Revoked (revoked takes precedence).
        clients: [],
    ),
    diagnostics: (
        // Log MQTT messages for fault finding (may impact performance under load).
        log_messages: false,
        // Also append logged messages to this file, for example Some("roost-messages.log").
        log_file: None,
    ),
    console: (
        // dark, light, high-contrast, or the path of a theme file.
        theme: "dark",
    ),
)
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn template_is_the_default_config() {
        assert_eq!(
            Config::from_ron(default_config_text()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn template_names_every_field() {
        // A field missing from the template would silently take its default: compare the
        // template's keys against a full serialisation of the defaults.
        let full = Config::default().to_ron();
        for line in full.lines() {
            if let Some((key, _)) = line.trim().split_once(':') {
                let key = key.trim();
                if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    assert!(
                        default_config_text().contains(&format!("{key}:")),
                        "template lacks `{key}`"
                    );
                }
            }
        }
    }
}

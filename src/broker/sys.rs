//! The `$SYS/broker/...` topics, named as Mosquitto names them so that operators' tools work.

use super::metrics::Metrics;
use super::state::BrokerState;

/// Topic and value of every `$SYS` topic, from the current counters.
pub fn values(shared: &BrokerState) -> Vec<(String, String)> {
    let m = &shared.metrics;
    let count = |c| Metrics::get(c).to_string();
    let connected = Metrics::get(&m.clients_connected);
    let sessions = Metrics::get(&m.sessions);
    let sizes = shared.store_sizes();
    vec![
        // roost's own: the store's sizes in bytes (zero in memory mode).
        (
            "$SYS/broker/store/retained/bytes".into(),
            sizes.retained.to_string(),
        ),
        (
            "$SYS/broker/store/queued/bytes".into(),
            sizes.queued.to_string(),
        ),
        (
            "$SYS/broker/store/sessions/bytes".into(),
            sizes.sessions.to_string(),
        ),
        (
            "$SYS/broker/version".into(),
            format!("roost {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime".into(),
            format!("{} seconds", shared.started_at.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected".into(),
            connected.to_string(),
        ),
        (
            "$SYS/broker/clients/disconnected".into(),
            sessions.saturating_sub(connected).to_string(),
        ),
        ("$SYS/broker/clients/total".into(), sessions.to_string()),
        // roost's own: sockets refused because limits.max_connections were open.
        (
            "$SYS/broker/connections/refused".into(),
            count(&m.connections_refused),
        ),
        (
            "$SYS/broker/messages/received".into(),
            count(&m.messages_received),
        ),
        ("$SYS/broker/messages/sent".into(), count(&m.messages_sent)),
        (
            "$SYS/broker/messages/dropped".into(),
            count(&m.messages_dropped),
        ),
        ("$SYS/broker/store/errors".into(), count(&m.store_errors)),
        // roost's own: CONNECTs refused for their credentials, and packets refused by the
        // topic permissions.
        (
            "$SYS/broker/clients/auth_failures".into(),
            count(&m.auth_failures),
        ),
        (
            "$SYS/broker/messages/denied".into(),
            count(&m.publishes_denied),
        ),
        (
            "$SYS/broker/subscriptions/denied".into(),
            count(&m.subscriptions_denied),
        ),
        (
            "$SYS/broker/bytes/received".into(),
            count(&m.bytes_received),
        ),
        ("$SYS/broker/bytes/sent".into(), count(&m.bytes_sent)),
        (
            "$SYS/broker/subscriptions/count".into(),
            count(&m.subscriptions),
        ),
        (
            "$SYS/broker/retained messages/count".into(),
            count(&m.retained),
        ),
        (
            "$SYS/broker/load/messages/received/1min".into(),
            format!("{:.2}", Metrics::rate(&m.received_load_1min)),
        ),
        (
            "$SYS/broker/load/messages/sent/1min".into(),
            format!("{:.2}", Metrics::rate(&m.sent_load_1min)),
        ),
    ]
}

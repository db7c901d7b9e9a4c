//! Administration: the console's client list, one client's details, closing one client on
//! request, the gauges, and the `$SYS/broker/...` topics.

use std::sync::Arc;
use std::time::Instant;

use super::Router;
use crate::broker::api::{
    ClientDetail, ClientInfo, ConnectionDetail, SubscriptionDetail, WillDetail,
};
use crate::broker::message::Message;
use crate::broker::metrics::Metrics;
use crate::broker::session::ClientCounters;
use crate::broker::subscriptions::FilterRef;
use crate::broker::sys;
use crate::mqtt::{Properties, Publish, QoS, ReasonCode};

impl Router {
    /// The connected clients, sorted by client id.
    pub(super) fn clients(&self) -> Vec<ClientInfo> {
        let mut clients: Vec<ClientInfo> = self
            .sessions
            .values()
            .filter_map(|session| {
                let connected = session.connection.as_ref()?;
                Some(ClientInfo {
                    client_id: session.client_id.clone(),
                    address: connected.info.address,
                    listener: connected.info.listener,
                    protocol: session.protocol,
                    username: connected.info.username.as_deref().map(str::to_string),
                    keep_alive_secs: connected.info.keep_alive_secs,
                    subscriptions: session.subscriptions.len(),
                    inflight: session.inflight.len(),
                    queued: usize::try_from(session.queued_len()).unwrap_or(usize::MAX),
                    connected_since: connected.info.connected_since,
                    messages_in: ClientCounters::get(&connected.info.counters.received),
                    messages_out: ClientCounters::get(&connected.info.counters.sent),
                    dropped: ClientCounters::get(&connected.info.counters.dropped),
                })
            })
            .collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        clients
    }

    /// Everything about one session, connected or not; `None` when there is none. Asked for
    /// one client at a time (the console's detail pane), never for the whole list.
    pub(super) fn client_detail(&self, client_id: &str, now: Instant) -> Option<ClientDetail> {
        let key = self.by_client_id.get(client_id)?;
        let session = self.sessions.get(key)?;
        let connection = session.connection.as_ref().map(|connected| {
            let info = &connected.info;
            ConnectionDetail {
                address: info.address,
                listener: info.listener,
                username: info.username.as_deref().map(str::to_string),
                keep_alive_secs: info.keep_alive_secs,
                clean_start: info.clean_start,
                connected_since: info.connected_since,
                receive_maximum: info.receive_maximum.map(|n| n.get()),
                maximum_packet_size: info.maximum_packet_size.map(|n| n.get()),
                topic_alias_maximum: info.topic_alias_maximum,
                messages_in: ClientCounters::get(&info.counters.received),
                messages_out: ClientCounters::get(&info.counters.sent),
                dropped: ClientCounters::get(&info.counters.dropped),
            }
        });
        let will = session.will.as_ref().map(|will| WillDetail {
            topic: will.topic.clone(),
            qos: will.qos,
            retain: will.retain,
            payload_bytes: will.payload.len(),
            delay_secs: will.properties.will_delay_interval.unwrap_or(0),
            publishes_in: session.will_at.map(|at| at.saturating_duration_since(now)),
        });
        let mut filters: Vec<_> = session.subscriptions.iter().collect();
        filters.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let subscriptions = filters
            .into_iter()
            .take(ClientDetail::MAX_SUBSCRIPTIONS)
            .map(|(full, subscription)| {
                let parsed = FilterRef::parse(full);
                let options = subscription.options;
                SubscriptionDetail {
                    filter: parsed.filter.to_string(),
                    share_group: parsed.group.map(str::to_string),
                    qos: options.qos,
                    no_local: options.no_local,
                    retain_as_published: options.retain_as_published,
                    retain_handling: options.retain_handling as u8,
                    identifier: subscription.identifier,
                }
            })
            .collect();
        Some(ClientDetail {
            client_id: session.client_id.clone(),
            protocol: session.protocol,
            connection,
            session_expiry_secs: session.expiry_secs,
            session_expires_in: session
                .expires_at
                .filter(|_| !session.is_connected())
                .map(|at| at.saturating_duration_since(now)),
            inflight: session.inflight.len(),
            queued: usize::try_from(session.queued_len()).unwrap_or(usize::MAX),
            window: session.window,
            will,
            subscriptions,
            subscription_count: session.subscriptions.len(),
        })
    }

    /// Closes the connection of `client_id`; false when it is not connected.
    pub(super) async fn disconnect_client(&mut self, client_id: &str) -> bool {
        match self.by_client_id.get(client_id).copied() {
            Some(key) if self.sessions.get(&key).is_some_and(|s| s.is_connected()) => {
                // An administrative close is not the client's normal DISCONNECT:
                // its will is published (MQTT-3.1.2-8).
                self.close_connection(key, Some(ReasonCode::AdministrativeAction), true)
                    .await;
                true
            }
            _ => false,
        }
    }

    /// Closes the connections made with a revoked client certificate; how many.
    pub(super) async fn disconnect_certificates(&mut self, thumbprints: &[Arc<str>]) -> usize {
        let keys: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, session)| {
                session
                    .connection
                    .as_ref()
                    .and_then(|connected| connected.info.certificate.as_ref())
                    .is_some_and(|used| thumbprints.contains(used))
            })
            .map(|(key, _)| *key)
            .collect();
        for &key in &keys {
            // 0x87 Not authorized: the credential it connected with is no longer accepted.
            // Not the client's own DISCONNECT, so its will is published (MQTT-3.1.2-8).
            self.close_connection(key, Some(ReasonCode::NotAuthorized), true)
                .await;
        }
        keys.len()
    }

    /// The session, subscription and retained-message counts the metrics show.
    pub(super) fn update_gauges(&self) {
        let metrics = &self.shared.metrics;
        Metrics::set(&metrics.sessions, self.sessions.len() as u64);
        Metrics::set(&metrics.subscriptions, self.tree.len() as u64);
        Metrics::set(&metrics.retained, self.retained.len() as u64);
    }

    /// Publishes the `$SYS/broker/...` topics, retained.
    pub(super) async fn publish_sys(&mut self) {
        let now = Instant::now();
        self.retained.purge_expired(now);
        self.update_gauges();
        for (topic, value) in sys::values(&self.shared) {
            let publish = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: Arc::from(topic.as_str()),
                packet_id: None,
                properties: Properties::default(),
                payload: value.into(),
            };
            let message = Arc::new(Message::new(publish, now));
            self.retained.set(message.clone());
            // At QoS 0 nothing of it goes through the store, so this cannot fail.
            if let Err(error) = self.route(&message, None).await {
                tracing::debug!(%error, "$SYS message not stored");
            }
        }
        self.update_gauges();
    }
}

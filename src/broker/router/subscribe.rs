//! SUBSCRIBE and UNSUBSCRIBE: the subscription tree and the session's own list, the
//! acknowledgement, and the retained messages a new subscription gets (started here, sent
//! in chunks by [`super::retained`]).

use super::Router;
use super::lifecycle::session_record;
use crate::broker::subscriptions::{FilterRef, SessionKey, Subscription};
use crate::mqtt::{
    Packet, Properties, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
    topic,
};

impl Router {
    pub(super) async fn subscribe(&mut self, key: SessionKey, subscribe: Subscribe) {
        let identifier = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        // No Local on a shared subscription is a protocol error (MQTT-3.8.3-4).
        if subscribe
            .filters
            .iter()
            .any(|f| f.options.no_local && FilterRef::parse(&f.filter).group.is_some())
        {
            self.close_connection(key, Some(ReasonCode::ProtocolError), true)
                .await;
            return;
        }
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let connection_id = session.link().map(|link| link.connection_id);
        let mut reasons = Vec::with_capacity(subscribe.filters.len());
        for request in &subscribe.filters {
            let parsed = FilterRef::parse(&request.filter);
            if !topic::is_valid_topic_filter_within(&request.filter, self.limits.max_topic_levels) {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            let subscription = Subscription {
                options: request.options,
                identifier,
            };
            let existed = self.tree.insert(&request.filter, key, subscription);
            session
                .subscriptions
                .insert(request.filter.clone(), subscription);
            reasons.push(match request.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            // Retained messages are not sent for shared subscriptions (MQTT 5.0 §4.8.2);
            // Retain Handling decides for the others (MQTT-3.3.1-9/-10/-11).
            let send_retained = parsed.group.is_none()
                && match request.options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            // The SUBACK goes first; the retained messages follow from the router's next
            // turns (MQTT-3.8.4-1 only asks that SUBACK is sent).
            match connection_id {
                Some(connection_id) if send_retained => {
                    self.pending_retained
                        .start(key, connection_id, &request.filter, subscription)
                }
                _ if parsed.group.is_none() => {
                    self.pending_retained
                        .update(key, &request.filter, subscription)
                }
                _ => {}
            }
        }
        session.send_packet(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        if session.is_persistent() {
            let record = session_record(session);
            let _ = self.store.put_session(record).await;
        }
        self.update_gauges();
    }

    pub(super) async fn unsubscribe(&mut self, key: SessionKey, unsubscribe: Unsubscribe) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let existed = session.subscriptions.remove(filter).is_some();
            if existed {
                self.tree.remove(filter, key);
                // Its retained messages not sent yet are not sent (what is on its way may
                // still arrive, MQTT-3.10.4-3).
                self.pending_retained.cancel(key, filter);
            }
            reasons.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        session.send_packet(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        if session.is_persistent() {
            let record = session_record(session);
            let _ = self.store.put_session(record).await;
        }
        self.update_gauges();
    }
}

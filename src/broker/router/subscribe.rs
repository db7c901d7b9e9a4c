//! SUBSCRIBE and UNSUBSCRIBE: the subscription tree and the session's own list, the
//! acknowledgement, and the retained messages a new subscription gets (started here, sent
//! in chunks by [`super::retained`]).

use super::lifecycle::session_record;
use super::permissions;
use super::persist::Persistence;
use super::{Router, store_failed};
use crate::auth::acl::SubscriptionVerdict;
use crate::broker::metrics::Metrics;
use crate::broker::session::Session;
use crate::broker::subscriptions::{FilterRef, SessionKey, Subscription, SubscriptionTree};
use crate::mqtt::{
    Packet, Properties, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
    topic,
};
use crate::store::StoreOp;

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
        // For each accepted ordinary filter: its subscription, and whether its retained
        // messages are to be sent.
        let mut retained: Vec<(&str, Subscription, bool)> = Vec::new();
        // What each accepted filter replaced, to undo it if the store cannot keep it.
        let mut changes: Vec<SubscriptionChange> = Vec::new();
        for request in &subscribe.filters {
            let parsed = FilterRef::parse(&request.filter);
            if !topic::is_valid_topic_filter_within(&request.filter, self.limits.max_topic_levels) {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            // A filter matching no topic the client may read is refused: 0x87 Not
            // authorized (MQTT 5.0 §3.9.3); 3.1.1 encodes it as 0x80 Failure (§3.9.3).
            if permissions::verdict(session.acl(), &request.filter) == SubscriptionVerdict::Refused
            {
                Metrics::add(&self.shared.metrics.subscriptions_denied, 1);
                tracing::info!(
                    client_id = %session.client_id,
                    filter = %request.filter,
                    "SUBSCRIBE refused: no topic it matches is readable by this client"
                );
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            let subscription = Subscription {
                options: request.options,
                identifier,
            };
            let existed = self.tree.insert(&request.filter, key, subscription);
            let before = session
                .subscriptions
                .insert(request.filter.clone(), subscription);
            changes.push(SubscriptionChange {
                filter: request.filter.clone(),
                before,
                reason_index: reasons.len(),
            });
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
            if parsed.group.is_none() {
                retained.push((&request.filter, subscription, send_retained));
            }
        }
        // The SUBACK follows the store: a subscription a persistent session could not keep
        // is refused with 0x80 (MQTT 5.0 §3.9.3 Unspecified error; MQTT 3.1.1 §3.9.3
        // Failure) and undone, so that the broker has exactly what it acknowledged.
        let saved = save_or_undo(
            &mut self.persist,
            &self.shared.metrics,
            &mut self.tree,
            (key, &mut **session),
            &changes,
            &mut reasons,
            "save the subscriptions; refused",
        )
        .await;
        if !saved {
            retained.clear();
        }
        permissions::refresh_delivery_check(session);
        session.send_packet(Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        // The SUBACK goes first; the retained messages follow from the router's next turns
        // (MQTT-3.8.4-1 only asks that the SUBACK is sent). A filter subscribed again
        // without asking for them keeps a match still pending, with the new options.
        for (filter, subscription, send) in retained {
            match connection_id {
                Some(connection_id) if send => {
                    self.pending_retained
                        .start(key, connection_id, filter, subscription)
                }
                _ => self.pending_retained.update(key, filter, subscription),
            }
        }
        self.update_gauges();
    }

    pub(super) async fn unsubscribe(&mut self, key: SessionKey, unsubscribe: Unsubscribe) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        let mut changes: Vec<SubscriptionChange> = Vec::new();
        for filter in &unsubscribe.filters {
            let before = session.subscriptions.remove(filter);
            if before.is_some() {
                self.tree.remove(filter, key);
                changes.push(SubscriptionChange {
                    filter: filter.clone(),
                    before,
                    reason_index: reasons.len(),
                });
            }
            reasons.push(if before.is_some() {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        // As for SUBSCRIBE: what the store could not keep is undone and not acknowledged.
        // v5 says so with 0x80 (MQTT 5.0 §3.11.3); a 3.1.1 UNSUBACK has no reason codes and
        // may not be withheld (MQTT-3.10.4-4), so the connection is closed instead, as for
        // a PUBLISH (MQTT-3.3.5-2).
        let saved = save_or_undo(
            &mut self.persist,
            &self.shared.metrics,
            &mut self.tree,
            (key, &mut **session),
            &changes,
            &mut reasons,
            "save the unsubscription; refused",
        )
        .await;
        if !saved {
            if !session.protocol.is_v5() {
                self.close_connection(key, None, true).await;
                return;
            }
        } else {
            // The retained messages of an unsubscribed filter not sent yet are not sent
            // (what is on its way may still arrive, MQTT-3.10.4-3).
            for change in &changes {
                self.pending_retained.cancel(key, &change.filter);
            }
        }
        permissions::refresh_delivery_check(session);
        session.send_packet(Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: Properties::default(),
            reasons,
        }));
        self.update_gauges();
    }
}

/// One filter a SUBSCRIBE or UNSUBSCRIBE changed, with what it replaced.
struct SubscriptionChange {
    filter: String,
    /// The session's subscription for the filter before the change, if it had one.
    before: Option<Subscription>,
    /// Where its reason code is in the acknowledgement.
    reason_index: usize,
}

impl SubscriptionChange {
    /// Puts the filter back as it was, in the tree and in the session's list.
    fn undo(&self, tree: &mut SubscriptionTree, session: &mut Session, key: SessionKey) {
        match self.before {
            Some(subscription) => {
                tree.insert(&self.filter, key, subscription);
                session
                    .subscriptions
                    .insert(self.filter.clone(), subscription);
            }
            None => {
                tree.remove(&self.filter, key);
                session.subscriptions.remove(&self.filter);
            }
        }
    }
}

/// Saves a persistent session after `changes` to its subscriptions. When the store fails, the
/// failure is logged and counted, and every change is undone with its reason set to 0x80
/// (MQTT 5.0 §3.9.3 / §3.11.3; 3.1.1 SUBACK Failure), so that the broker holds exactly what it
/// acknowledges. Returns false when the changes were undone.
async fn save_or_undo(
    persist: &mut Persistence,
    metrics: &Metrics,
    tree: &mut SubscriptionTree,
    (key, session): (SessionKey, &mut Session),
    changes: &[SubscriptionChange],
    reasons: &mut [ReasonCode],
    action: &str,
) -> bool {
    if !session.is_persistent() || changes.is_empty() {
        return true;
    }
    let Err(error) = persist.commit(vec![StoreOp::PutSession(Box::new(session_record(session)))])
    else {
        return true;
    };
    store_failed(
        metrics,
        &error,
        action,
        Some(&session.client_id),
        changes.first().map(|c| c.filter.as_str()),
    );
    for change in changes.iter().rev() {
        reasons[change.reason_index] = ReasonCode::UnspecifiedError;
        change.undo(tree, session, key);
    }
    false
}

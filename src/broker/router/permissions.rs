//! Topic permissions in the router: each session holds the rules of its client
//! ([`ClientAcl`], `None` when the configuration has no rules), and the router checks
//! PUBLISH (write), SUBSCRIBE (read), deliveries (read) and wills (write) against them.
//!
//! The cost with no rules is one branch per packet. With rules, a delivery is checked only
//! for sessions holding a subscription that a rule can restrict (one that matches topics the
//! client may not read); the others were judged whole at SUBSCRIBE.

use std::sync::Arc;

use super::Router;
use crate::auth::acl::{ClientAcl, SubscriptionVerdict, TopicPermissions};
use crate::broker::connection::link::{Ack, AckKind};
use crate::broker::metrics::Metrics;
use crate::broker::session::{Session, SessionAccess};
use crate::broker::subscriptions::{FilterRef, SessionKey};
use crate::mqtt::{Publish, QoS, ReasonCode};

impl Router {
    /// New rules from Apply: every session is held to them from its next packet, and a
    /// will its client may no longer write is deleted.
    pub(super) fn set_permissions(&mut self, permissions: &TopicPermissions) {
        if *self.permissions == *permissions {
            return;
        }
        self.permissions = Arc::new(permissions.clone());
        self.permissions_active = !permissions.is_empty();
        let keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        for key in keys {
            self.attach_permissions(key);
        }
    }

    /// Gives session `key` the rules of its client (at CONNECT and at Apply).
    pub(super) fn attach_permissions(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let acl = self
            .permissions
            .for_client(session.username(), &session.client_id);
        if let Some(acl) = &acl
            && session
                .will
                .as_ref()
                .is_some_and(|will| !acl.may_write(&will.topic))
        {
            tracing::warn!(client_id = %session.client_id, "will deleted: its topic is not writable");
            session.will = None;
        }
        match (&mut session.access, acl) {
            (Some(access), acl) => access.acl = acl,
            (None, None) => {}
            (None, acl) => {
                session.access = Some(Box::new(SessionAccess {
                    acl,
                    ..SessionAccess::default()
                }))
            }
        }
        refresh_delivery_check(session);
    }

    /// Whether session `key` may publish to `publish.topic`. When it may not, the PUBLISH
    /// is answered here and logged: v5 gets PUBACK/PUBREC 0x87 Not authorized (MQTT 5.0
    /// §3.4.2.1, §3.5.2.1); 3.1.1 has no negative acknowledgement, so the PUBLISH is
    /// acknowledged as usual and discarded (MQTT-3.3.5-2).
    pub(super) fn publish_allowed(&mut self, key: SessionKey, publish: &Publish) -> bool {
        let Some(session) = self.sessions.get_mut(&key) else {
            return false;
        };
        let Some(acl) = session.acl() else {
            return true;
        };
        if acl.may_write(&publish.topic) {
            return true;
        }
        Metrics::add(&self.shared.metrics.publishes_denied, 1);
        tracing::info!(
            client_id = %session.client_id,
            topic = %publish.topic,
            "PUBLISH refused: the topic is not writable by this client"
        );
        let packet_id = publish.packet_id.unwrap_or(0);
        let v5 = session.protocol.is_v5();
        let reason = match v5 {
            true => ReasonCode::NotAuthorized,
            false => ReasonCode::Success,
        };
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => session.send_ack(Ack::new(AckKind::PubAck, packet_id, reason)),
            QoS::ExactlyOnce => {
                // 3.1.1: the exchange goes on as for any QoS 2 message, PUBREL then PUBCOMP.
                // v5: a PUBREC with a failure code ends it (MQTT 5.0 §4.3.3).
                if !v5 {
                    session.incoming_qos2.insert(packet_id);
                }
                session.send_ack(Ack::new(AckKind::PubRec, packet_id, reason));
            }
        }
        false
    }

    /// Whether a message on `topic` may go to session `key` (delivery and retained).
    pub(super) fn may_receive(&self, key: SessionKey, topic: &str) -> bool {
        match self.sessions.get(&key) {
            Some(session) => session_may_read(session, topic),
            None => true,
        }
    }
}

/// The read check at delivery, skipped when no subscription of the session can be
/// restricted.
pub(super) fn session_may_read(session: &Session, topic: &str) -> bool {
    match &session.access {
        Some(access) if access.checks_delivery => {
            access.acl.as_ref().is_none_or(|acl| acl.may_read(topic))
        }
        _ => true,
    }
}

/// How a SUBSCRIBE filter (with or without `$share/{group}/`) fares under `acl`.
pub(super) fn verdict(acl: Option<&ClientAcl>, full_filter: &str) -> SubscriptionVerdict {
    match acl {
        Some(acl) => acl.subscription(FilterRef::parse(full_filter).filter),
        None => SubscriptionVerdict::Unrestricted,
    }
}

/// Whether the session's subscriptions need the read check at delivery.
pub(super) fn refresh_delivery_check(session: &mut Session) {
    let checks = match session.acl() {
        Some(acl) => session
            .subscriptions
            .iter()
            .any(|(filter, _)| verdict(Some(acl), filter) != SubscriptionVerdict::Unrestricted),
        None => false,
    };
    if let Some(access) = &mut session.access {
        access.checks_delivery = checks;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{connect_request, router};
    use super::*;
    use crate::auth::acl::parse_acl_file;
    use crate::mqtt::{Properties, Subscribe, SubscribeFilter, SubscriptionOptions, Unsubscribe};

    fn subscribe(filter: &str) -> Subscribe {
        Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![SubscribeFilter {
                filter: filter.into(),
                options: SubscriptionOptions::default(),
            }],
        }
    }

    fn checks_delivery(router: &Router, key: SessionKey) -> bool {
        router.sessions[&key]
            .access
            .as_ref()
            .is_some_and(|access| access.checks_delivery)
    }

    #[tokio::test]
    async fn deliveries_are_checked_only_while_a_subscription_can_be_restricted() {
        let mut router = router();
        let (request, _outbox) = connect_request("c", 1, true, Some(0), None);
        router.connect(request).await;
        let key = router.by_client_id["c"];
        // No rules: no permissions at all, nothing to check.
        assert!(router.sessions[&key].acl().is_none());
        router.set_permissions(
            &parse_acl_file("topic read open/#\ntopic deny open/secret/#\n").unwrap(),
        );
        assert!(
            router.sessions[&key].acl().is_some(),
            "applied to a live session"
        );
        router.subscribe(key, subscribe("open/public/+")).await;
        assert!(!checks_delivery(&router, key), "covered by a read rule");
        router.subscribe(key, subscribe("open/#")).await;
        assert!(checks_delivery(&router, key), "reaches open/secret/#");
        router
            .unsubscribe(
                key,
                Unsubscribe {
                    packet_id: 2,
                    properties: Properties::default(),
                    filters: vec!["open/#".into()],
                },
            )
            .await;
        assert!(!checks_delivery(&router, key));
        // Rules removed at Apply: back to no checks at all.
        router.set_permissions(&TopicPermissions::default());
        assert!(router.sessions[&key].acl().is_none());
        assert!(!router.permissions_active);
    }
}

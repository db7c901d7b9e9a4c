//! Shared subscriptions (MQTT 5.0 §4.8.2): when a member of a group leaves, the group's
//! messages it holds go to another connected member.

use crate::broker::session::{Queued, Session};
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::QoS;

use super::Router;
use crate::store::StoreOp;

impl Router {
    /// A shared-subscription member left: its QoS 1 messages in flight and every queued
    /// message of the group go to another connected member (MQTT 5.0 §4.8.2). QoS 2
    /// messages already in flight stay: their delivery completes with this client when it
    /// reconnects (MQTT-4.8.2-4/-5).
    pub(super) async fn redistribute_shared(&mut self, key: SessionKey) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let moving = session.take_shared_messages();
        let client_id = session.client_id.clone();
        let persistent = session.is_persistent();
        // What no other member takes waits for this one.
        let mut staying = Vec::new();
        for queued in moving {
            let Some(share) = queued.share.clone() else {
                continue;
            };
            let sessions = &self.sessions;
            let other = self.tree.pick_other_member(&share, key, |k| {
                sessions.get(&k).is_some_and(|s| s.is_connected())
            });
            match other {
                Some((other, subscription)) => {
                    let moved = Queued {
                        qos: queued.message.publish.qos.min(subscription.options.qos),
                        subscription_ids: subscription.identifier.into_iter().collect(),
                        ..queued.clone()
                    };
                    // Taken from this member's record only once the other member has it;
                    // a copy the store could not give the other one stays here.
                    if self.deliver(other, moved).await.is_err() {
                        staying.push(queued);
                        continue;
                    }
                    if persistent {
                        self.stage(StoreOp::RemoveMessage {
                            client_id: client_id.clone(),
                            sequence: queued.sequence,
                            payload: queued.payload,
                        });
                    }
                }
                None => staying.push(queued),
            }
        }
        if let Some(session) = self.sessions.get_mut(&key) {
            session.put_back_in_order(staying);
        }
    }
}

impl Session {
    /// Takes what a leaving member hands on to its groups: its QoS 1 shared messages in
    /// flight (in send order), then its queued shared messages (in queue order). Its own
    /// queued messages keep their order; QoS 2 messages in flight stay (MQTT-4.8.2-4/-5).
    pub(super) fn take_shared_messages(&mut self) -> Vec<Queued> {
        let mut moving = Vec::new();
        let mut index = 0;
        while index < self.inflight.len() {
            let inflight = &self.inflight[index];
            if inflight.queued.share.is_some() && inflight.queued.qos == QoS::AtLeastOnce {
                if let Some(inflight) = self.inflight.remove(index) {
                    self.forget_resend(inflight.packet_id);
                    moving.push(inflight.queued);
                }
            } else {
                index += 1;
            }
        }
        let (shared, own): (Vec<Queued>, Vec<Queued>) =
            self.queue.drain(..).partition(|q| q.share.is_some());
        self.queue.extend(own);
        moving.extend(shared);
        moving
    }

    /// Puts back messages taken from this session, each where its sequence number (the
    /// order they reached the session) places it among the queued ones, so that they go
    /// out in the order they came (MQTT-4.6.0-6).
    pub(super) fn put_back_in_order(&mut self, mut messages: Vec<Queued>) {
        if messages.is_empty() {
            return;
        }
        messages.extend(self.queue.drain(..));
        // Stable, and both parts are already in order: a merge in practice.
        messages.sort_by_key(|queued| queued.sequence);
        self.queue.extend(messages);
    }
}

#[cfg(test)]
mod tests {
    use super::super::RouterMsg;
    use super::super::testing::{
        connect_request, connected_session, inflight, queued, router, sent,
    };
    use crate::mqtt::{ProtocolVersion, QoS};

    #[tokio::test]
    async fn with_no_other_member_the_messages_stay_in_their_original_order() {
        // MQTT-4.6.0-6 (ordered topic delivery): a leaving member whose group has nobody
        // else keeps its shared messages, in the order they came, among its own.
        let mut router = router();
        let (request, _receiver) = connect_request("member", 1, true, Some(3600), None);
        router.connect(request).await;
        let key = router.by_client_id["member"];
        let share = Some("$share/g/t");
        let session = router.sessions.get_mut(&key).expect("session");
        let mut in_flight = inflight(1, "s1", QoS::AtLeastOnce);
        in_flight.queued = queued("s1", QoS::AtLeastOnce, share);
        in_flight.queued.sequence = 1;
        session.inflight.push_back(in_flight);
        for (sequence, topic, share) in [
            (2, "own2", None),
            (3, "s3", share),
            (4, "own4", None),
            (5, "s5", share),
        ] {
            let mut q = queued(topic, QoS::AtLeastOnce, share);
            q.sequence = sequence;
            session.queue.push_back(q);
        }

        router
            .handle(RouterMsg::ConnectionLost {
                session: key,
                connection_id: 1,
                publish_will: false,
                expiry_secs: None,
            })
            .await;
        let order: Vec<&str> = router.sessions[&key]
            .queue
            .iter()
            .map(|q| q.message.topic())
            .collect();
        assert_eq!(order, ["s1", "own2", "s3", "own4", "s5"]);
    }

    #[test]
    fn a_leaving_member_hands_on_qos1_in_flight_and_queued_shared_messages() {
        // MQTT 5.0 §4.8.2; QoS 2 in flight stays with the member (MQTT-4.8.2-4/-5).
        let (mut session, mut receiver) = connected_session(ProtocolVersion::V5, 10);
        let share = Some("$share/g/t");
        let mut shared_q1 = inflight(1, "s1", QoS::AtLeastOnce);
        shared_q1.queued = queued("s1", QoS::AtLeastOnce, share);
        let mut shared_q2 = inflight(2, "s2", QoS::ExactlyOnce);
        shared_q2.queued = queued("s2", QoS::ExactlyOnce, share);
        session.inflight.push_back(shared_q1);
        session.inflight.push_back(shared_q2);
        session
            .inflight
            .push_back(inflight(3, "own", QoS::AtLeastOnce));
        session.pending_resend.extend([1, 2, 3]);
        session.queue.extend([
            queued("own-a", QoS::AtLeastOnce, None),
            queued("s3", QoS::AtLeastOnce, share),
            queued("own-b", QoS::AtLeastOnce, None),
            queued("s4", QoS::ExactlyOnce, share),
        ]);

        let moving: Vec<String> = session
            .take_shared_messages()
            .iter()
            .map(|q| q.message.topic().to_owned())
            .collect();
        assert_eq!(moving, ["s1", "s3", "s4"]);

        let in_flight: Vec<u16> = session.inflight.iter().map(|i| i.packet_id).collect();
        assert_eq!(in_flight, [2, 3]);
        assert_eq!(
            session.pending_resend,
            [2, 3],
            "1 moved away: not resent here"
        );
        let own: Vec<&str> = session.queue.iter().map(|q| q.message.topic()).collect();
        assert_eq!(own, ["own-a", "own-b"]);
        assert!(sent(&mut receiver).is_empty());
    }
}

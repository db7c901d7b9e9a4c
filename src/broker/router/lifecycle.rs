//! Session lifecycle: CONNECT (new session, takeover, resume), the loss of a connection,
//! closing a connection from the broker's side, session end and expiry, and the timer set
//! that drives delayed wills and session expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ConnectRequest, Router};
use crate::broker::connection::link::Outbound;
use crate::broker::metrics::Metrics;
use crate::broker::session::{Connected, Session, SessionAccess};
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::{Packet, ReasonCode};
use crate::store::{SessionRecord, StoreOp, wall_clock};

/// What a timer in [`Router`]'s set is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    Will,
    SessionExpiry,
}

impl Router {
    /// A client whose CONNECT its connection accepted: a new session, or an existing one
    /// taken over and resumed (or replaced, with Clean Start).
    pub(super) async fn connect(&mut self, request: ConnectRequest) {
        let existing = self.by_client_id.get(&request.client_id).copied();
        let mut session_present = false;
        let key = match existing {
            Some(key) => {
                // Session takeover (MQTT-3.1.4-3): the old connection is closed with 0x8E.
                if self.sessions.get(&key).is_some_and(|s| s.is_connected()) {
                    // It ends without DISCONNECT, so a will without delay goes out now
                    // (MQTT-3.1.2-8, as HiveMQ does); one with a delay is deleted, as this
                    // new connection opens before the delay has elapsed (MQTT-3.1.3-9),
                    // even if the old session ends with its connection.
                    let will_delayed = self
                        .sessions
                        .get(&key)
                        .and_then(|s| s.will.as_ref())
                        .is_some_and(|will| will.properties.will_delay_interval.unwrap_or(0) > 0);
                    self.close_connection(key, Some(ReasonCode::SessionTakenOver), !will_delayed)
                        .await;
                }
                // A new Network Connection for this Client Identifier within the Will Delay
                // Interval deletes the will waiting for it, whatever its Clean Start: the
                // session that Clean Start 1 ends does not publish it (MQTT-3.1.2-8,
                // MQTT-3.1.3-9).
                self.cancel_delayed_will(key);
                if request.clean_start {
                    self.end_session(key).await;
                    self.new_session(request.client_id.clone(), request.protocol)
                } else if self.sessions.contains_key(&key) {
                    session_present = true;
                    self.cancel_expiry(key);
                    key
                } else {
                    self.new_session(request.client_id.clone(), request.protocol)
                }
            }
            None => self.new_session(request.client_id.clone(), request.protocol),
        };
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.protocol = request.protocol;
        session.expiry_secs = request.expiry_secs;
        session.will = request.will.map(Box::new);
        session.window = request.window.max(1);
        session.defer_sends = self.persist.waits_for_sync && session.is_persistent();
        let username: Option<Arc<str>> = request.info.username.clone();
        match (&mut session.access, username) {
            (Some(access), username) => access.username = username,
            (None, None) => {}
            (None, username) => {
                session.access = Some(Box::new(SessionAccess {
                    username,
                    ..SessionAccess::default()
                }))
            }
        }
        session.connection = Some(Connected {
            link: request.link,
            info: Box::new(request.info),
        });
        let mut connack = request.connack;
        connack.session_present = session_present;
        self.attach_permissions(key);
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.send_packet(Packet::ConnAck(connack));
        let _ = request.reply.send(key);
        if session.is_persistent() {
            // The CONNACK has gone: the session works from memory; its record (protocol,
            // expiry, will) goes with this turn's batch.
            let record = session_record(session);
            self.stage(StoreOp::PutSession(Box::new(record)));
        }
        // Resume: what was in flight goes again first, then the queue.
        if let Some(session) = self.sessions.get_mut(&key) {
            session.resend_after_resume();
        }
        self.pump(key).await;
        Metrics::add(&self.shared.metrics.clients_connected, 1);
        self.update_gauges();
    }

    /// Closes every connection from the broker's side (shutdown, service disabled).
    pub(super) async fn disconnect_all(&mut self, reason: ReasonCode, shutdown: bool) {
        let connected: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_connected())
            .map(|(key, _)| *key)
            .collect();
        for key in connected {
            // The server closes the connection without having received DISCONNECT, so the
            // will is published, after its delay (MQTT-3.1.2-8, MQTT 5.0 §3.1.2.5): a server
            // shutdown is not exempt.
            self.close_connection(key, Some(reason), true).await;
        }
        if shutdown && !self.persist.store.survives_restart() {
            self.publish_delayed_wills().await;
        }
    }

    /// Closes the session's connection from the broker's side.
    pub(super) async fn close_connection(
        &mut self,
        key: SessionKey,
        reason: Option<ReasonCode>,
        publish_will: bool,
    ) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(connected) = session.connection.take() else {
            return;
        };
        let reason = reason.filter(|_| session.protocol.is_v5());
        connected.link.send(Outbound::Close(reason));
        self.connection_lost(key, publish_will).await;
    }

    /// The session has just lost its connection.
    pub(super) async fn connection_lost(&mut self, key: SessionKey, publish_will: bool) {
        let now = Instant::now();
        let metrics = &self.shared.metrics.clients_connected;
        Metrics::set(metrics, Metrics::get(metrics).saturating_sub(1));
        self.pending_retained.cancel_session(key);
        self.redistribute_shared(key).await;
        if !self.sessions.contains_key(&key) {
            return;
        }
        if let Some(will) = self.will_after_disconnect(key, publish_will, now) {
            self.publish_will(will).await;
        }
        self.schedule_expiry(key, now);
        match self.sessions.get(&key) {
            Some(session) if session.expiry_secs == Some(0) => self.end_session(key).await,
            Some(session) if session.is_persistent() => {
                // Its deadlines (expiry, delayed will) continue on the wall clock across a
                // restart.
                let record = session_record(session);
                self.stage(StoreOp::PutSession(Box::new(record)));
                if self.persist.keeps_queues
                    && let Some(session) = self.sessions.get_mut(&key)
                {
                    // Offline, its waiting messages are kept by the store only.
                    session.spill_queue();
                }
            }
            _ => {}
        }
        self.update_gauges();
    }

    pub(super) fn schedule_expiry(&mut self, key: SessionKey, now: Instant) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        // A new deadline replaces the earlier one, in the timer set too.
        if let Some(at) = session.expires_at.take() {
            self.timers.remove(&(at, key, TimerKind::SessionExpiry));
        }
        if let Some(secs) = session.expiry_secs.filter(|secs| *secs > 0) {
            let at = later(now, secs);
            session.expires_at = Some(at);
            self.timers.insert((at, key, TimerKind::SessionExpiry));
        }
    }

    /// The session has a connection again, or ends: it no longer expires.
    pub(super) fn cancel_expiry(&mut self, key: SessionKey) {
        if let Some(session) = self.sessions.get_mut(&key)
            && let Some(at) = session.expires_at.take()
        {
            self.timers.remove(&(at, key, TimerKind::SessionExpiry));
        }
    }

    /// Deletes a will waiting for its delay, with its timer, without publishing it.
    pub(super) fn cancel_delayed_will(&mut self, key: SessionKey) {
        if let Some(session) = self.sessions.get_mut(&key) {
            session.will = None;
            if let Some(at) = session.will_at.take() {
                self.timers.remove(&(at, key, TimerKind::Will));
            }
        }
    }

    /// Removes a session; a will still waiting for its delay goes out now (MQTT 5.0 §3.1.2.5).
    pub(super) async fn end_session(&mut self, key: SessionKey) {
        let Some(mut session) = self.sessions.remove(&key) else {
            return;
        };
        // Its deadlines go with it.
        if let Some(at) = session.expires_at {
            self.timers.remove(&(at, key, TimerKind::SessionExpiry));
        }
        if let Some(at) = session.will_at {
            self.timers.remove(&(at, key, TimerKind::Will));
        }
        self.by_client_id.remove(&session.client_id);
        for filter in session.subscriptions.keys() {
            self.tree.remove(filter, key);
        }
        // Unconditionally: the session may have been persistent earlier in its life (a v5
        // DISCONNECT can lower its expiry to 0).
        let payloads = session
            .inflight
            .iter()
            .map(|i| i.queued.payload)
            .chain(session.queue.iter().map(|q| q.payload))
            .collect();
        self.stage(StoreOp::RemoveSession {
            client_id: session.client_id.clone(),
            payloads,
            in_store_only: session.spilled() > 0,
        });
        if let Some(will) = session.will.take().filter(|_| session.will_at.is_some()) {
            self.publish_will(*will).await;
        }
        self.update_gauges();
    }

    /// Publishes the wills and ends the sessions whose time has come.
    pub(super) async fn fire_timers(&mut self) {
        self.fire_timers_at(Instant::now()).await;
    }

    /// [`Router::fire_timers`] as of `now`.
    pub(super) async fn fire_timers_at(&mut self, now: Instant) {
        while let Some(&(at, key, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            match kind {
                TimerKind::Will if session.will_at == Some(at) => {
                    session.will_at = None;
                    if let Some(will) = session.will.take() {
                        self.publish_will(*will).await;
                    }
                }
                TimerKind::SessionExpiry
                    if session.expires_at == Some(at) && !session.is_connected() =>
                {
                    self.end_session(key).await;
                }
                _ => {}
            }
        }
    }
}

/// The durable part of a session, as the store keeps it; deadlines on the wall clock.
pub(super) fn session_record(session: &Session) -> SessionRecord {
    SessionRecord {
        client_id: session.client_id.clone(),
        protocol: session.protocol,
        expiry_secs: session.expiry_secs,
        expires_at: session.expires_at.map(wall_clock),
        subscriptions: session
            .subscriptions
            .iter()
            .map(|(filter, subscription)| (filter.clone(), *subscription))
            .collect(),
        will: session.will.as_deref().cloned(),
        will_at: session.will_at.map(wall_clock),
        username: session.username().map(Arc::from),
    }
}

/// `secs` after `now`, saturating at a date far beyond any session.
pub(super) fn later(now: Instant, secs: u32) -> Instant {
    now.checked_add(Duration::from_secs(u64::from(secs)))
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::{connect_request, router};
    use super::super::{Router, RouterMsg};
    use crate::broker::subscriptions::SessionKey;
    use crate::mqtt::{Properties, QoS, Will};

    fn will_with_delay(delay_secs: u32) -> Will {
        Will {
            topic: "will".into(),
            payload: bytes::Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(delay_secs),
                ..Properties::default()
            },
        }
    }

    async fn connect(
        router: &mut Router,
        connection_id: u64,
        clean_start: bool,
        will: Option<Will>,
    ) -> SessionKey {
        let (request, _receiver) =
            connect_request("c", connection_id, clean_start, Some(3600), will);
        router.connect(request).await;
        router.by_client_id["c"]
    }

    async fn lose(router: &mut Router, key: SessionKey, connection_id: u64) {
        router
            .handle(RouterMsg::ConnectionLost {
                session: key,
                connection_id,
                publish_will: true,
                expiry_secs: None,
            })
            .await;
    }

    #[tokio::test]
    async fn reconnects_leave_one_timer_per_pending_deadline() {
        // Each disconnect schedules the session's expiry (and its will's delay); resuming,
        // replacing or ending the session must take those entries out again, or a client
        // that reconnects often grows the timer set for as long as its expiry.
        let mut router = router();
        let mut connection_id = 1;
        let mut key = connect(&mut router, connection_id, true, Some(will_with_delay(60))).await;
        for round in 0..500 {
            lose(&mut router, key, connection_id).await;
            assert_eq!(
                router.timers.len(),
                2,
                "round {round}: the expiry and the will delay"
            );
            connection_id += 1;
            // Clean Start 0 resumes; every tenth reconnect starts clean instead.
            let clean_start = round % 10 == 9;
            connect(
                &mut router,
                connection_id,
                clean_start,
                Some(will_with_delay(60)),
            )
            .await;
            assert!(
                router.timers.is_empty(),
                "round {round}: a connected session has no deadline, found {:?}",
                router.timers
            );
            // Takeover by a new connection while this one is open.
            connection_id += 1;
            key = connect(&mut router, connection_id, false, Some(will_with_delay(60))).await;
            assert!(router.timers.is_empty(), "round {round}: after takeover");
        }

        lose(&mut router, key, connection_id).await;
        let session = &router.sessions[&key];
        let expires_at = session.expires_at.expect("expiry scheduled");
        let will_at = session.will_at.expect("will delayed");
        assert_eq!(router.timers.len(), 2);
        // The session still ends on time after the last disconnect.
        router
            .fire_timers_at(will_at - Duration::from_millis(1))
            .await;
        assert!(router.sessions[&key].will.is_some());
        router.fire_timers_at(will_at).await;
        assert!(router.sessions[&key].will.is_none(), "will published");
        assert_eq!(router.timers.len(), 1);
        router
            .fire_timers_at(expires_at - Duration::from_millis(1))
            .await;
        assert!(router.sessions.contains_key(&key));
        router.fire_timers_at(expires_at).await;
        assert!(!router.sessions.contains_key(&key), "session expired");
        assert!(router.timers.is_empty());
        assert!(expires_at > Instant::now() + Duration::from_secs(3000));
    }
}

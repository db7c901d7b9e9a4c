//! Session lifecycle: CONNECT (new session, takeover, resume), the loss of a connection,
//! closing a connection from the broker's side, session end and expiry, and the timer set
//! that drives delayed wills and session expiry.

use std::time::{Duration, Instant};

use super::{ConnectRequest, Router};
use crate::broker::metrics::Metrics;
use crate::broker::session::{Connected, Outbound, Session};
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::{Packet, ReasonCode};
use crate::store::SessionRecord;

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
                if self.sessions.get(&key).is_some_and(Session::is_connected) {
                    let will_survives = !request.clean_start
                        && self
                            .sessions
                            .get(&key)
                            .and_then(|s| s.will.as_ref())
                            .is_some_and(|will| {
                                will.properties.will_delay_interval.unwrap_or(0) > 0
                            });
                    // The old will goes out unless the session is resumed before its will
                    // delay has run (MQTT-3.1.3-9); a resumed session cancels it.
                    self.close_connection(key, Some(ReasonCode::SessionTakenOver), !will_survives)
                        .await;
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.will = None;
                        session.will_at = None;
                    }
                }
                if request.clean_start {
                    self.end_session(key).await;
                    self.new_session(request.client_id.clone(), request.protocol)
                } else if self.sessions.contains_key(&key) {
                    session_present = true;
                    // Reconnecting in time cancels a delayed will (MQTT-3.1.3-9).
                    if let Some(session) = self.sessions.get_mut(&key) {
                        session.will = None;
                        session.will_at = None;
                        session.expires_at = None;
                    }
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
        session.will = request.will;
        session.window = request.window.max(1);
        session.connection = Some(Connected {
            link: request.link,
            info: request.info,
        });
        let mut connack = request.connack;
        connack.session_present = session_present;
        session.send_packet(Packet::ConnAck(connack));
        let _ = request.reply.send(key);
        if session.is_persistent() {
            let record = session_record(session);
            if let Err(error) = self.store.put_session(record).await {
                tracing::warn!(%error, "store: cannot save session");
            }
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
        if shutdown {
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
        if self
            .sessions
            .get(&key)
            .is_some_and(|s| s.expiry_secs == Some(0))
        {
            self.end_session(key).await;
        }
        self.update_gauges();
    }

    pub(super) fn schedule_expiry(&mut self, key: SessionKey, now: Instant) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(secs) = session.expiry_secs.filter(|secs| *secs > 0) {
            let at = later(now, secs);
            session.expires_at = Some(at);
            self.timers.insert((at, key, TimerKind::SessionExpiry));
        }
    }

    /// Removes a session; a will still waiting for its delay goes out now (MQTT 5.0 §3.1.2.5).
    pub(super) async fn end_session(&mut self, key: SessionKey) {
        let Some(mut session) = self.sessions.remove(&key) else {
            return;
        };
        self.by_client_id.remove(&session.client_id);
        for filter in session.subscriptions.keys() {
            self.tree.remove(filter, key);
        }
        // Unconditionally: the session may have been persistent earlier in its life (a v5
        // DISCONNECT can lower its expiry to 0).
        if let Err(error) = self.store.remove_session(&session.client_id).await {
            tracing::warn!(%error, "store: cannot remove session");
        }
        if let Some(will) = session.will.take().filter(|_| session.will_at.is_some()) {
            self.publish_will(will).await;
        }
        self.update_gauges();
    }

    /// Publishes the wills and ends the sessions whose time has come.
    pub(super) async fn fire_timers(&mut self) {
        let now = Instant::now();
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
                        self.publish_will(will).await;
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

/// The durable part of a session, as the store keeps it.
pub(super) fn session_record(session: &Session) -> SessionRecord {
    SessionRecord {
        client_id: session.client_id.clone(),
        expiry_secs: session.expiry_secs,
        subscriptions: session
            .subscriptions
            .iter()
            .map(|(filter, subscription)| (filter.clone(), *subscription))
            .collect(),
    }
}

/// `secs` after `now`, saturating at a date far beyond any session.
pub(super) fn later(now: Instant, secs: u32) -> Instant {
    now.checked_add(Duration::from_secs(u64::from(secs)))
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

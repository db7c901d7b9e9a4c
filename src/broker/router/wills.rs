//! Wills: holding a will for its Will Delay Interval when its connection ends, and
//! publishing it (MQTT-3.1.2-8, MQTT 5.0 §3.1.2.5, MQTT-3.1.3-9).

use std::sync::Arc;
use std::time::Instant;

use super::Router;
use super::lifecycle::{TimerKind, later};
use crate::broker::message::Message;
use crate::broker::subscriptions::SessionKey;
use crate::mqtt::{Publish, Will};

impl Router {
    /// The connection of session `key` has just ended: takes its will, and returns it when
    /// it goes out now; a will with a delay is put back with a timer. Without
    /// `publish_will` (a normal DISCONNECT) the will is deleted.
    pub(super) fn will_after_disconnect(
        &mut self,
        key: SessionKey,
        publish_will: bool,
        now: Instant,
    ) -> Option<Will> {
        let session = self.sessions.get_mut(&key)?;
        let will = session.will.take()?;
        if !publish_will {
            return None;
        }
        let expiry = session.expiry_secs;
        let delay = will.properties.will_delay_interval.unwrap_or(0);
        if delay == 0 || expiry == Some(0) {
            return Some(*will);
        }
        // Out when the delay or the session ends, whichever first (MQTT 5.0 §3.1.2.5).
        let delay = match expiry {
            Some(expiry) => delay.min(expiry),
            None => delay,
        };
        let at = later(now, delay);
        session.will = Some(will);
        if let Some(earlier) = session.will_at.replace(at) {
            self.timers.remove(&(earlier, key, TimerKind::Will));
        }
        self.timers.insert((at, key, TimerKind::Will));
        None
    }

    /// On shutdown with a store that does not survive the process, wills waiting for their
    /// delay go out now: every session ends with the broker, and a session that ends
    /// publishes its will (MQTT 5.0 §3.1.2.5). A disk store keeps them with their wall-clock
    /// time, and they go out after the restart when it comes.
    pub(super) async fn publish_delayed_wills(&mut self) {
        let delayed: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.will_at.is_some())
            .map(|(key, _)| *key)
            .collect();
        for key in delayed {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            if let Some(at) = session.will_at.take() {
                self.timers.remove(&(at, key, TimerKind::Will));
            }
            if let Some(will) = session.will.take() {
                self.publish_will(*will).await;
            }
        }
    }

    /// Publishes a will as an application message (retained if it asks to be).
    pub(super) async fn publish_will(&mut self, will: Will) {
        let mut properties = will.properties;
        properties.will_delay_interval = None;
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: None,
            properties,
            payload: will.payload,
        };
        let message = Arc::new(Message::arrived(publish));
        // Nobody is waiting for an answer: a will the store cannot keep (retained, or
        // queued for a persistent session) is logged and counted where it failed, and
        // goes to everyone else.
        if message.publish.retain && self.retain(&message).await.is_err() {
            tracing::warn!(topic = message.topic(), "will not retained: store failed");
        }
        if self.route(&message, None).await.is_err() {
            tracing::warn!(
                topic = message.topic(),
                "will not queued for every subscriber"
            );
        }
    }
}

//! The records that the broker and the store both hold: an application message and a
//! subscription's options. They live below both so that the store depends on no broker
//! module (it is called by the router and never calls back).

use std::time::{Duration, Instant};

use crate::mqtt::{Publish, SubscriptionOptions};

/// One application message. Deliveries share it behind an `Arc`; what differs per
/// subscriber travels in `broker::Delivery`.
#[derive(Debug)]
pub struct Message {
    /// Topic, payload and properties as published (the topic alias already resolved).
    pub publish: Publish,
    /// When the Message Expiry Interval runs out (MQTT-3.3.2-5).
    pub expires_at: Option<Instant>,
}

impl Message {
    pub fn new(publish: Publish, now: Instant) -> Message {
        Message::arrived_at(publish, || now)
    }

    /// A message arriving now; the clock is read only when the message can expire.
    pub fn arrived(publish: Publish) -> Message {
        Message::arrived_at(publish, Instant::now)
    }

    fn arrived_at(mut publish: Publish, now: impl FnOnce() -> Instant) -> Message {
        // Aliases belong to one connection; each delivery chooses its own (MQTT-3.3.2-10).
        publish.properties.topic_alias = None;
        publish.packet_id = None;
        publish.dup = false;
        let expires_at = publish
            .properties
            .message_expiry_interval
            // An interval past the clock's range never expires.
            .and_then(|secs| now().checked_add(Duration::from_secs(u64::from(secs))));
        Message {
            publish,
            expires_at,
        }
    }

    pub fn topic(&self) -> &str {
        &self.publish.topic
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Like [`Message::is_expired`] at the current instant, without reading the clock for a
    /// message that cannot expire (most of them).
    pub fn has_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Instant::now())
    }

    /// [`Message::remaining_expiry`] from the current instant, reading the clock only for a
    /// message that can expire.
    pub fn remaining_expiry_now(&self) -> Option<u32> {
        self.expires_at
            .and_then(|_| self.remaining_expiry(Instant::now()))
    }

    /// Whether the message arrived with a Message Expiry Interval of 0: it has no time to
    /// wait, so only copies whose delivery starts at once go out (MQTT-3.3.2-5).
    pub fn expires_on_arrival(&self) -> bool {
        self.publish.properties.message_expiry_interval == Some(0)
    }

    /// The Message Expiry Interval to forward: the time left, rounded up so that a message
    /// still alive is never forwarded with 0 (MQTT-3.3.2-6). One that arrived with 0 goes
    /// out with 0, the received value minus the time waited (MQTT-3.3.2-6): absent, it
    /// would never expire, and 1 would give it time it was not given.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        if self.expires_on_arrival() {
            return Some(0);
        }
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
        })
    }
}

/// One subscription of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// MQTT 5.0 subscription identifier (§3.8.2.1.2).
    pub identifier: Option<u32>,
}

//! Retained messages (MQTT-3.3.1-5..-7): the last retained message of each topic, and the
//! ones a new subscription gets (MQTT-3.3.1-9..-11).
//!
//! [`RetainedMessages`] is the container, behind a small interface so that its lookup can
//! change (today a map by topic, scanned for each new subscription) without touching the
//! router; [`Router::retain`] keeps it and the store in step.

use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap, HashMapExt};

use super::{Router, store_failed};
use crate::broker::message::Message;
use crate::broker::metrics::Metrics;
use crate::broker::subscriptions::filter_matches;
use crate::store::StoreError;

/// The retained message of each topic that has one.
#[derive(Debug)]
pub(super) struct RetainedMessages {
    by_topic: HashMap<Arc<str>, Arc<Message>>,
}

impl Default for RetainedMessages {
    fn default() -> Self {
        RetainedMessages {
            by_topic: HashMap::new(),
        }
    }
}

impl RetainedMessages {
    /// Stores `message` as its topic's retained message, replacing any earlier one.
    pub(super) fn set(&mut self, message: Arc<Message>) {
        self.by_topic.insert(message.publish.topic.clone(), message);
    }

    /// Removes the retained message of `topic`; returns whether there was one.
    pub(super) fn clear(&mut self, topic: &str) -> bool {
        self.by_topic.remove(topic).is_some()
    }

    /// The retained messages, not expired at `now`, whose topic `filter` matches (an
    /// ordinary filter, without `$share/{group}/`). In no particular order.
    pub(super) fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        self.by_topic
            .values()
            .filter(|message| filter_matches(filter, message.topic()) && !message.is_expired(now))
            .cloned()
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Drops the messages expired at `now` (MQTT-3.3.2-5).
    pub(super) fn purge_expired(&mut self, now: Instant) {
        self.by_topic.retain(|_, message| !message.is_expired(now));
    }
}

impl Router {
    /// A PUBLISH with RETAIN set: stored, replacing the topic's earlier one, or, with an
    /// empty payload, clearing it (MQTT-3.3.1-5..-7); the store follows. A message the
    /// store cannot keep does not replace the one it holds, and the error is returned.
    pub(super) async fn retain(&mut self, message: &Arc<Message>) -> Result<(), StoreError> {
        let topic = message.publish.topic.clone();
        let result = if message.publish.payload.is_empty() || message.expires_on_arrival() {
            // An empty retained message clears the topic and is not stored (MQTT-3.3.1-6/-7);
            // one with a Message Expiry Interval of 0 replaces the old one (MQTT-3.3.1-5)
            // but has expired before anyone could get it (MQTT-3.3.2-5).
            if self.retained.clear(&topic) {
                self.store.set_retained(&topic, None).await
            } else {
                Ok(())
            }
        } else {
            let stored = self.store.set_retained(&topic, Some(message.clone())).await;
            if stored.is_ok() {
                self.retained_sweep.note(message.expires_at);
                self.retained.set(message.clone());
            }
            stored
        };
        if let Err(error) = &result {
            store_failed(
                &self.shared.metrics,
                error,
                "keep the retained message",
                None,
                Some(&topic),
            );
        }
        Metrics::set(&self.shared.metrics.retained, self.retained.len() as u64);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::message_at;
    use super::RetainedMessages;

    fn topics(retained: &RetainedMessages, filter: &str, now: Instant) -> Vec<String> {
        let mut topics: Vec<String> = retained
            .matching(filter, now)
            .iter()
            .map(|m| m.topic().to_owned())
            .collect();
        topics.sort();
        topics
    }

    #[test]
    fn a_topic_keeps_only_its_latest_retained_message() {
        // MQTT-3.3.1-5: a new retained message replaces the topic's earlier one.
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("a/b", None, now));
        let latest = message_at("a/b", Some(60), now);
        retained.set(latest.clone());
        assert_eq!(retained.len(), 1);
        let found = retained.matching("a/b", now);
        assert_eq!(found.len(), 1);
        assert!(std::sync::Arc::ptr_eq(&found[0], &latest));
    }

    #[test]
    fn clear_says_whether_there_was_a_message() {
        // MQTT-3.3.1-6: an empty retained message clears the topic.
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("a", None, now));
        assert!(retained.clear("a"));
        assert!(!retained.clear("a"));
        assert!(!retained.clear("never"));
        assert_eq!(retained.len(), 0);
    }

    #[test]
    fn matching_follows_the_filter_and_skips_expired_messages() {
        // MQTT-3.3.1-9 (what a subscription gets), MQTT-3.3.2-5 (expired: not sent),
        // MQTT-4.7.2-1 (`#` and `+` at the start do not match `$` topics).
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        for topic in [
            "home/kitchen",
            "home/hall/lamp",
            "office",
            "$SYS/broker/uptime",
        ] {
            retained.set(message_at(topic, None, now));
        }
        retained.set(message_at("home/garage", Some(10), now));
        assert_eq!(
            topics(&retained, "home/+", now),
            ["home/garage", "home/kitchen"]
        );
        assert_eq!(
            topics(&retained, "home/#", now + Duration::from_secs(11)),
            ["home/hall/lamp", "home/kitchen"]
        );
        assert_eq!(
            topics(&retained, "#", now),
            ["home/garage", "home/hall/lamp", "home/kitchen", "office"]
        );
        assert_eq!(topics(&retained, "$SYS/#", now), ["$SYS/broker/uptime"]);
        assert!(topics(&retained, "nothing/here", now).is_empty());
    }

    #[test]
    fn purge_removes_only_expired_messages() {
        let now = Instant::now();
        let mut retained = RetainedMessages::default();
        retained.set(message_at("short", Some(1), now));
        retained.set(message_at("long", Some(100), now));
        retained.set(message_at("forever", None, now));
        retained.purge_expired(now);
        assert_eq!(retained.len(), 3);
        retained.purge_expired(now + Duration::from_secs(2));
        assert_eq!(retained.len(), 2);
        assert!(!retained.clear("short"));
    }
}

//! The diagnostics log: a bounded ring of packet events with pause and a typed filter.
//!
//! The filter is an MQTT topic filter when it has a wildcard (`sensors/+/temp`, `test/#`,
//! matched as subscriptions match, MQTT 5.0 §4.7), else a case-insensitive substring of the
//! client id or the topic. Events that match the filter are kept in a ring of their own, so a
//! quiet client is not pushed out of view by the traffic of thousands of others.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::broker::DiagEvent;

/// Events kept in memory; older ones fall off the front.
pub const LOG_CAPACITY: usize = 2000;

#[derive(Debug, Default)]
pub struct DiagLog {
    /// Each event with its sequence number.
    events: VecDeque<(u64, Arc<DiagEvent>)>,
    next_seq: u64,
    /// While paused, only events up to this sequence number are shown.
    frozen_at: Option<u64>,
    /// Lines scrolled back from the newest shown event.
    pub scroll_back: usize,
    /// Events lost because the broker's channel overflowed.
    pub lost: u64,
    /// Lowercase filter on client id or topic; empty shows everything.
    filter: String,
    /// The filter as typed, for topic-filter matching (topics are case-sensitive).
    topic_filter: Option<String>,
    /// The events that match the filter, bounded like `events`; used while a filter is set.
    matching: VecDeque<(u64, Arc<DiagEvent>)>,
}

impl DiagLog {
    pub fn push(&mut self, event: Arc<DiagEvent>) {
        if !self.filter.is_empty() && self.matches(&event) {
            if self.matching.len() == LOG_CAPACITY {
                self.matching.pop_front();
            }
            self.matching.push_back((self.next_seq, event.clone()));
        }
        if self.events.len() == LOG_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back((self.next_seq, event));
        self.next_seq += 1;
    }

    /// The events matching the filter that are kept (all events without a filter).
    pub fn matching_len(&self) -> usize {
        if self.filter.is_empty() {
            self.events.len()
        } else {
            self.matching.len()
        }
    }

    pub fn is_paused(&self) -> bool {
        self.frozen_at.is_some()
    }

    pub fn toggle_pause(&mut self) {
        self.frozen_at = match self.frozen_at {
            Some(_) => {
                self.scroll_back = 0;
                None
            }
            None => Some(self.next_seq),
        };
    }

    /// Events that arrived since the pause and are not shown yet.
    pub fn held_back(&self) -> u64 {
        self.frozen_at.map_or(0, |at| self.next_seq - at)
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.matching.clear();
        self.scroll_back = 0;
        if self.frozen_at.is_some() {
            self.frozen_at = Some(self.next_seq);
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn set_filter(&mut self, filter: &str) {
        let filter = filter.trim();
        let new = filter.to_lowercase();
        if new == self.filter {
            return;
        }
        self.topic_filter =
            (filter.contains('+') || filter.contains('#')).then(|| filter.to_string());
        self.filter = new;
        self.scroll_back = 0;
        // Start the matching ring from what is still in memory.
        self.matching = if self.filter.is_empty() {
            VecDeque::new()
        } else {
            self.events
                .iter()
                .filter(|(_, event)| self.matches(event))
                .cloned()
                .collect()
        };
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events to show, oldest first: frozen while paused, filtered, scrolled back.
    pub fn visible(&self, rows: usize) -> Vec<&DiagEvent> {
        let source = if self.filter.is_empty() {
            &self.events
        } else {
            &self.matching
        };
        let matching: Vec<&DiagEvent> = source
            .iter()
            .filter(|(seq, _)| self.frozen_at.is_none_or(|at| *seq < at))
            .map(|(_, event)| event.as_ref())
            .collect();
        let end = matching.len().saturating_sub(self.scroll_back);
        let start = end.saturating_sub(rows);
        matching[start..end].to_vec()
    }

    fn matches(&self, event: &DiagEvent) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        if let Some(topic_filter) = &self.topic_filter {
            return event
                .topic
                .as_deref()
                .is_some_and(|topic| crate::broker::filter_matches(topic_filter, topic));
        }
        event.client_id.to_lowercase().contains(&self.filter)
            || event
                .topic
                .as_deref()
                .is_some_and(|topic| topic.to_lowercase().contains(&self.filter))
    }

    pub fn scroll(&mut self, lines_back: isize) {
        let limit = self.matching_len();
        self.scroll_back = self
            .scroll_back
            .saturating_add_signed(lines_back)
            .min(limit);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::broker::{Direction, ListenerKind};
    use crate::mqtt::PacketType;

    fn event(client: &str, topic: &str) -> Arc<DiagEvent> {
        Arc::new(DiagEvent {
            time: SystemTime::UNIX_EPOCH,
            client_id: client.into(),
            transport: ListenerKind::Tcp,
            direction: Direction::In,
            packet_type: PacketType::Publish,
            topic: Some(topic.into()),
            qos: None,
            packet_id: None,
            size: 10,
            payload_preview: None,
        })
    }

    #[test]
    fn ring_is_bounded() {
        let mut log = DiagLog::default();
        for i in 0..LOG_CAPACITY + 5 {
            log.push(event(&format!("c{i}"), "t"));
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(
            &*log.visible(1)[0].client_id,
            format!("c{}", LOG_CAPACITY + 4)
        );
    }

    #[test]
    fn pause_freezes_the_view() {
        let mut log = DiagLog::default();
        log.push(event("a", "t"));
        log.toggle_pause();
        log.push(event("b", "t"));
        assert_eq!(log.visible(10).len(), 1);
        assert_eq!(log.held_back(), 1);
        log.toggle_pause();
        assert_eq!(log.visible(10).len(), 2);
    }

    #[test]
    fn wildcard_filters_match_topics_as_subscriptions_do() {
        let mut log = DiagLog::default();
        log.push(event("a", "sensors/kitchen/temp"));
        log.push(event("b", "sensors/kitchen/humidity"));
        log.push(event("c", "test/x/y"));
        log.set_filter("sensors/+/temp");
        assert_eq!(log.visible(10).len(), 1);
        assert_eq!(&*log.visible(10)[0].client_id, "a");
        log.set_filter("test/#");
        assert_eq!(&*log.visible(10)[0].client_id, "c");
        log.set_filter("#");
        assert_eq!(log.visible(10).len(), 3);
    }

    #[test]
    fn matching_events_are_kept_beyond_the_last_two_thousand() {
        let mut log = DiagLog::default();
        log.set_filter("quiet/#");
        log.push(event("quiet-one", "quiet/1"));
        for i in 0..LOG_CAPACITY * 2 {
            log.push(event(&format!("busy{i}"), "busy/topic"));
        }
        log.push(event("quiet-two", "quiet/2"));
        assert_eq!(log.len(), LOG_CAPACITY, "all events stay bounded");
        let shown: Vec<&str> = log.visible(10).iter().map(|e| &*e.client_id).collect();
        assert_eq!(shown, vec!["quiet-one", "quiet-two"]);
        for i in 0..LOG_CAPACITY + 1 {
            log.push(event(&format!("q{i}"), "quiet/n"));
        }
        assert_eq!(
            log.matching_len(),
            LOG_CAPACITY,
            "matching events stay bounded"
        );
    }

    #[test]
    fn filter_matches_client_or_topic() {
        let mut log = DiagLog::default();
        log.push(event("sensor-1", "home/kitchen"));
        log.push(event("sensor-2", "home/garage"));
        log.set_filter("Kitchen");
        assert_eq!(log.visible(10).len(), 1);
        log.set_filter("sensor-2");
        assert_eq!(&*log.visible(10)[0].client_id, "sensor-2");
        log.set_filter("");
        assert_eq!(log.visible(10).len(), 2);
    }
}

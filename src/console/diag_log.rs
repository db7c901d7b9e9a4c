//! The diagnostics log: a bounded ring of packet events with pause and a typed filter.

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
}

impl DiagLog {
    pub fn push(&mut self, event: Arc<DiagEvent>) {
        if self.events.len() == LOG_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back((self.next_seq, event));
        self.next_seq += 1;
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
        self.scroll_back = 0;
        if self.frozen_at.is_some() {
            self.frozen_at = Some(self.next_seq);
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.trim().to_lowercase();
        self.scroll_back = 0;
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events to show, oldest first: frozen while paused, filtered, scrolled back.
    pub fn visible(&self, rows: usize) -> Vec<&DiagEvent> {
        let matching: Vec<&DiagEvent> = self
            .events
            .iter()
            .filter(|(seq, _)| self.frozen_at.is_none_or(|at| *seq < at))
            .map(|(_, event)| event.as_ref())
            .filter(|event| self.matches(event))
            .collect();
        let end = matching.len().saturating_sub(self.scroll_back);
        let start = end.saturating_sub(rows);
        matching[start..end].to_vec()
    }

    fn matches(&self, event: &DiagEvent) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        event.client_id.to_lowercase().contains(&self.filter)
            || event
                .topic
                .as_deref()
                .is_some_and(|topic| topic.to_lowercase().contains(&self.filter))
    }

    pub fn scroll(&mut self, lines_back: isize) {
        let limit = self.events.len();
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

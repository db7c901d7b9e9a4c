//! Retained messages indexed by topic level, so that a SUBSCRIBE costs what its filter
//! matches rather than a scan of every retained message, and a large match can be handed
//! out in chunks across router turns.
//!
//! The index is a tree with one node per topic level; children are kept in a `BTreeMap` so
//! that every walk visits topics in one stable order (level by level, byte order, a topic
//! before the topics below it). That order is what lets a match resume: a [`RetainedMatch`]
//! remembers the filter and the last topic it went past, and the next chunk continues with
//! the topics after it. Every walk (set, remove, match, purge, drop) is a loop: the depth
//! of the tree is the number of levels of a client's topic.
//!
//! Expiry is lazy: a match never returns a message whose Message Expiry Interval has run
//! out (MQTT-3.3.2-5), and [`RetainedIndex::purge_expired`] frees them when the router
//! chooses (it sweeps retained messages on its `$SYS` tick today).

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use super::level_tree::{self, LevelNode};
use super::message::Message;

/// Topic levels a chunk may walk per message it may return, so that a chunk's work stays
/// bounded even when few of the nodes it passes match (`+/x` over a million topics).
const NODES_PER_MESSAGE: usize = 64;

#[derive(Debug, Default)]
struct Node {
    children: BTreeMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl LevelNode for Node {
    fn child(&self, level: &str) -> Option<&Node> {
        self.children.get(level)
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node> {
        self.children.get_mut(level)
    }

    fn remove_child(&mut self, level: &str) {
        self.children.remove(level);
    }

    fn take_children(&mut self) -> Vec<Node> {
        std::mem::take(&mut self.children).into_values().collect()
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }

    fn holds_more_than_one_child(&self) -> bool {
        self.message.is_some() || self.children.len() > 1
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        level_tree::drop_children(self);
    }
}

/// The retained messages, one per topic (MQTT-3.3.1-5).
#[derive(Debug, Default)]
pub struct RetainedIndex {
    root: Node,
    len: usize,
}

impl RetainedIndex {
    /// Every retained message, `$` topics included, in no particular order (a walk with an
    /// explicit stack: the tree is as deep as a client's topic).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let mut out = Vec::with_capacity(self.len);
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            out.extend(node.message.iter().cloned());
            stack.extend(node.children.values());
        }
        out
    }

    /// Number of retained messages, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Retains `message` for `topic` (its topic name), replacing and returning the message
    /// retained there before.
    pub fn set(&mut self, topic: &str, message: Arc<Message>) -> Option<Arc<Message>> {
        debug_assert_eq!(topic, message.topic());
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let previous = node.message.replace(message);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// The message retained for exactly `topic`, expired or not.
    #[cfg(test)]
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Removes and returns the message retained for `topic` (an empty retained PUBLISH
    /// clears it, MQTT-3.3.1-6); nodes left empty are pruned.
    pub fn remove(&mut self, topic: &str) -> Option<Arc<Message>> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_mut(level)?;
        }
        let removed = node.message.take()?;
        self.len -= 1;
        if node.is_empty() {
            level_tree::prune(&mut self.root, topic);
        }
        Some(removed)
    }

    /// Removes every message whose expiry has passed at `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        // Find them first (the walk reads the tree), then remove them one by one (each
        // removal prunes its own path).
        let mut expired = Vec::new();
        let mut stack: Vec<btree_map::Iter<'_, Box<str>, Node>> = vec![self.root.children.iter()];
        while let Some(children) = stack.last_mut() {
            let Some((_, child)) = children.next() else {
                stack.pop();
                continue;
            };
            if let Some(message) = &child.message
                && message.is_expired(now)
            {
                expired.push(message.publish.topic.clone());
            }
            if !child.children.is_empty() {
                stack.push(child.children.iter());
            }
        }
        for topic in &expired {
            self.remove(topic);
        }
        expired.len()
    }

    /// Appends to `out` at most `max` (at least 1) unexpired messages matching the
    /// cursor's filter that come after the cursor, in the index's order, and moves the
    /// cursor past them. Returns how many were appended. A chunk also stops after walking
    /// `64 × max` topic levels, so it may return fewer than `max`, even none, before the
    /// match is done: call again until [`RetainedMatch::is_done`].
    ///
    /// Between calls the index may change: no call panics and no topic is returned twice
    /// by one match; a message set or removed meanwhile is returned or not depending on
    /// whether its topic comes after the cursor (a replaced message is returned once, in
    /// its newest form, if its topic had not been passed yet).
    pub fn next_chunk(
        &self,
        cursor: &mut RetainedMatch,
        max: usize,
        now: Instant,
        out: &mut Vec<Arc<Message>>,
    ) -> usize {
        if cursor.done {
            return 0;
        }
        let max = max.max(1);
        let budget = max.saturating_mul(NODES_PER_MESSAGE);
        let filter: Vec<&str> = cursor.filter.split('/').collect();
        let after: Vec<&str> = cursor
            .after
            .as_deref()
            .map(|after| after.split('/').collect())
            .unwrap_or_default();
        let mut walk = Walk {
            filter: &filter,
            after: &after,
            stack: Vec::new(),
            path: Vec::new(),
            now,
            out,
            found: 0,
        };
        walk.start(&self.root);
        let mut visited = 0;
        while walk.found < max && visited < budget {
            if !walk.step() {
                let found = walk.found;
                cursor.done = true;
                cursor.after = None;
                return found;
            }
            visited += 1;
        }
        // Stopped after a node: everything up to its topic has been considered.
        let (found, last) = (walk.found, walk.path.join("/"));
        cursor.after = Some(last.into());
        found
    }
}

/// A resumable match of one filter against a [`RetainedIndex`]. It owns its position (the
/// last topic the walk went past), so it holds no borrow of the index between chunks and
/// stays valid whatever happens to the index meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMatch {
    /// An ordinary topic filter (MQTT 4.7.1), not a `$share/` one: retained messages are
    /// not sent for shared subscriptions (MQTT 5.0 §4.8.2).
    filter: Box<str>,
    /// Every topic up to this one (in the index's order) has been considered.
    after: Option<Box<str>>,
    done: bool,
}

impl RetainedMatch {
    pub fn new(filter: &str) -> RetainedMatch {
        RetainedMatch {
            filter: filter.into(),
            after: None,
            done: false,
        }
    }

    /// Whether every matching topic has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// One node's children still to visit during a match.
struct Frame<'a> {
    children: btree_map::Range<'a, Box<str>, Node>,
    /// The node's depth in the tree (its number of topic levels).
    level: usize,
    /// How the children are matched.
    mode: Mode,
    /// Whether the node is on the path of the cursor's topic: its children before that
    /// topic's next level have been considered already.
    on_path: bool,
    /// Children whose level starts with `$` are skipped (a first-level wildcard,
    /// MQTT-4.7.2-1).
    skip_dollar: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The children are matched against filter level `level` (`+` or an exact level).
    Filter,
    /// Below a `#`: every descendant matches.
    Subtree,
}

/// The state of one chunk's depth-first walk.
struct Walk<'a, 'o> {
    filter: &'a [&'a str],
    /// The cursor's topic, split into levels (empty at the start).
    after: &'a [&'a str],
    stack: Vec<Frame<'a>>,
    /// The levels of the node visited last.
    path: Vec<&'a str>,
    now: Instant,
    out: &'o mut Vec<Arc<Message>>,
    found: usize,
}

impl<'a> Walk<'a, '_> {
    /// Pushes the root's frame. The root holds no message (a topic has at least one level).
    fn start(&mut self, root: &'a Node) {
        let on_path = !self.after.is_empty();
        match self.filter.first() {
            Some(&"#") => self.push(root, 0, Mode::Subtree, on_path),
            Some(_) => self.push(root, 0, Mode::Filter, on_path),
            None => {}
        }
    }

    /// Pushes a frame for `node`'s children, restricted to those at or after the cursor's
    /// level when the node is on the cursor's path.
    fn push(&mut self, node: &'a Node, level: usize, mode: Mode, on_path: bool) {
        let from = match (on_path, self.after.get(level)) {
            (true, Some(&next)) => Bound::Included(next),
            _ => Bound::Unbounded,
        };
        let children = match mode {
            Mode::Subtree => node.children.range::<str, _>((from, Bound::Unbounded)),
            Mode::Filter => match self.filter.get(level) {
                Some(&"+") => node.children.range::<str, _>((from, Bound::Unbounded)),
                Some(&exact) => {
                    let passed = matches!(from, Bound::Included(next) if exact < next);
                    let to = if passed {
                        Bound::Excluded(exact)
                    } else {
                        Bound::Included(exact)
                    };
                    node.children.range::<str, _>((Bound::Included(exact), to))
                }
                None => return,
            },
        };
        let wildcard = mode == Mode::Subtree || self.filter.get(level) == Some(&"+");
        self.stack.push(Frame {
            children,
            level,
            mode,
            on_path,
            skip_dollar: level == 0 && wildcard,
        });
    }

    /// Visits the next node; false when the walk is over.
    fn step(&mut self) -> bool {
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return false;
            };
            let Some((key, child)) = frame.children.next() else {
                self.stack.pop();
                continue;
            };
            if frame.skip_dollar && key.starts_with('$') {
                continue;
            }
            let (level, mode) = (frame.level + 1, frame.mode);
            // A node on the cursor's path is the cursor's topic or comes before it: its
            // message has been considered already.
            let on_path = frame.on_path && self.after.get(frame.level) == Some(&&**key);
            self.path.truncate(frame.level);
            self.path.push(&**key);
            let mut matches = false;
            match mode {
                Mode::Subtree => {
                    matches = true;
                    self.push(child, level, Mode::Subtree, on_path);
                }
                Mode::Filter => match self.filter.get(level) {
                    None => matches = true,
                    // "sport/#" also matches "sport" (MQTT 3.1.1 §4.7.1.2).
                    Some(&"#") => {
                        matches = true;
                        self.push(child, level, Mode::Subtree, on_path);
                    }
                    Some(_) => self.push(child, level, Mode::Filter, on_path),
                },
            }
            if matches
                && !on_path
                && let Some(message) = &child.message
                && !message.is_expired(self.now)
            {
                self.out.push(message.clone());
                self.found += 1;
            }
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::filter_matches;
    use crate::mqtt::{Properties, Publish, QoS};
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn message(topic: &str) -> Arc<Message> {
        message_expiring(topic, None)
    }

    fn message_expiring(topic: &str, expiry: Option<u32>) -> Arc<Message> {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: Arc::from(topic),
            packet_id: None,
            properties: Properties {
                message_expiry_interval: expiry,
                ..Properties::default()
            },
            payload: bytes::Bytes::from_static(b"x"),
        };
        Arc::new(Message::new(publish, Instant::now()))
    }

    fn index_of(topics: &[&str]) -> RetainedIndex {
        let mut index = RetainedIndex::default();
        for topic in topics {
            index.set(topic, message(topic));
        }
        index
    }

    /// Every topic the match returns, in order, chunk by chunk.
    fn chunked(index: &RetainedIndex, filter: &str, chunk: usize) -> Vec<String> {
        let mut cursor = RetainedMatch::new(filter);
        let mut topics = Vec::new();
        let mut calls = 0;
        while !cursor.is_done() {
            let mut out = Vec::new();
            let added = index.next_chunk(&mut cursor, chunk, Instant::now(), &mut out);
            assert_eq!(added, out.len());
            assert!(out.len() <= chunk.max(1));
            topics.extend(out.iter().map(|m| m.topic().to_string()));
            calls += 1;
            assert!(calls < 100_000, "the match does not end");
        }
        topics
    }

    #[test]
    fn set_get_remove() {
        let mut index = RetainedIndex::default();
        assert!(index.set("a/b", message("a/b")).is_none());
        assert!(index.set("a/b", message("a/b")).is_some());
        index.set("a", message("a"));
        index.set("a/b/c", message("a/b/c"));
        assert_eq!(index.len(), 3);
        assert_eq!(index.get("a/b").map(|m| m.topic()), Some("a/b"));
        assert!(index.get("a/x").is_none());
        assert!(index.remove("a/b").is_some());
        assert!(index.remove("a/b").is_none());
        assert!(index.get("a/b/c").is_some(), "the topic below stays");
        assert!(index.remove("a/b/c").is_some());
        assert!(index.root.children["a"].children.is_empty(), "pruned");
        assert!(index.remove("a").is_some());
        assert!(index.is_empty());
        assert!(index.root.is_empty());
    }

    #[test]
    fn wildcards_and_dollar_topics() {
        let index = index_of(&["a", "a/b", "a/c", "a/b/c", "b/b", "$SYS/x", "/", "/x"]);
        assert_eq!(chunked(&index, "a/+", 10), ["a/b", "a/c"]);
        assert_eq!(chunked(&index, "a/#", 10), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(chunked(&index, "+/b", 10), ["a/b", "b/b"]);
        // MQTT-4.7.2-1: first-level wildcards do not match `$` topics.
        assert_eq!(
            chunked(&index, "#", 10),
            ["/", "/x", "a", "a/b", "a/b/c", "a/c", "b/b"]
        );
        assert_eq!(chunked(&index, "+/x", 10), ["/x"]);
        assert_eq!(chunked(&index, "$SYS/#", 10), ["$SYS/x"]);
        assert_eq!(chunked(&index, "$SYS/x", 10), ["$SYS/x"]);
        assert_eq!(chunked(&index, "+/+", 1), ["/", "/x", "a/b", "a/c", "b/b"]);
        assert!(chunked(&index, "z/#", 10).is_empty());
    }

    #[test]
    fn chunks_resume_where_they_stopped() {
        let topics: Vec<String> = (0..1000).map(|i| format!("s/{i:04}/v")).collect();
        let mut index = RetainedIndex::default();
        for topic in &topics {
            index.set(topic, message(topic));
        }
        for chunk in [1, 7, 100, 1000, 5000] {
            assert_eq!(chunked(&index, "s/+/v", chunk), topics, "chunk {chunk}");
            assert_eq!(chunked(&index, "s/#", chunk), topics, "chunk {chunk}");
        }
    }

    #[test]
    fn a_chunk_walks_a_bounded_number_of_nodes() {
        // 10,000 topics, none matching `+/x`: a chunk of 1 stops after 64 nodes.
        let mut index = RetainedIndex::default();
        for i in 0..10_000 {
            let topic = format!("{i}");
            index.set(&topic, message(&topic));
        }
        index.set("9999/x", message("9999/x"));
        let mut cursor = RetainedMatch::new("+/x");
        let mut out = Vec::new();
        assert_eq!(
            index.next_chunk(&mut cursor, 1, Instant::now(), &mut out),
            0
        );
        assert!(!cursor.is_done());
        assert_eq!(chunked(&index, "+/x", 1), ["9999/x"]);
    }

    #[test]
    fn expired_messages_are_skipped_then_purged() {
        let mut index = index_of(&["a/1", "a/3"]);
        index.set("a/2", message_expiring("a/2", Some(1)));
        index.set("a/2/x", message_expiring("a/2/x", Some(1)));
        let later = Instant::now() + Duration::from_secs(2);
        let mut cursor = RetainedMatch::new("a/#");
        let mut out = Vec::new();
        index.next_chunk(&mut cursor, 10, later, &mut out);
        let topics: Vec<&str> = out.iter().map(|m| m.topic()).collect();
        assert_eq!(topics, ["a/1", "a/3"]);
        assert_eq!(index.len(), 4);
        assert_eq!(index.purge_expired(later), 2);
        assert_eq!(index.len(), 2);
        assert!(
            !index.root.children["a"].children.contains_key("2"),
            "pruned"
        );
        assert_eq!(index.purge_expired(later), 0);
    }

    #[test]
    fn changes_between_chunks_never_repeat_a_topic() {
        let mut index = index_of(&["a/1", "a/2", "a/3", "a/4", "a/5"]);
        let mut cursor = RetainedMatch::new("a/+");
        let mut seen = Vec::new();
        let mut out = Vec::new();
        index.next_chunk(&mut cursor, 2, Instant::now(), &mut out);
        seen.extend(out.drain(..).map(|m| m.topic().to_string()));
        assert_eq!(seen, ["a/1", "a/2"]);
        // The cursor's own topic goes, one before it and one after it come and go.
        index.remove("a/2");
        index.set("a/0", message("a/0"));
        index.set("a/1", message("a/1"));
        index.remove("a/4");
        index.set("a/6", message("a/6"));
        while !cursor.is_done() {
            index.next_chunk(&mut cursor, 2, Instant::now(), &mut out);
            seen.extend(out.drain(..).map(|m| m.topic().to_string()));
        }
        assert_eq!(seen, ["a/1", "a/2", "a/3", "a/5", "a/6"]);
        // Everything removed: the match just ends.
        let mut cursor = RetainedMatch::new("a/+");
        index.next_chunk(&mut cursor, 1, Instant::now(), &mut out);
        for topic in ["a/0", "a/1", "a/3", "a/5", "a/6"] {
            index.remove(topic);
        }
        assert!(index.root.is_empty());
        assert_eq!(
            index.next_chunk(&mut cursor, 1, Instant::now(), &mut out),
            0
        );
        assert!(cursor.is_done());
    }

    #[test]
    fn deep_topics_without_recursion() {
        // 100,000 levels: a recursive walk or drop would overflow the test thread's stack.
        let deep = "/".repeat(99_999);
        let mut index = index_of(&[deep.as_str(), "a"]);
        index.set(&format!("{deep}/x"), message(&format!("{deep}/x")));
        // Chunks large enough for the walk's node budget to cover the depth in one call.
        let chunk = 2_000;
        assert_eq!(chunked(&index, &deep, chunk).len(), 1);
        assert_eq!(chunked(&index, "#", chunk).len(), 3);
        assert_eq!(chunked(&index, &format!("{deep}/+"), chunk).len(), 1);
        assert_eq!(index.purge_expired(Instant::now()), 0);
        assert!(index.remove(&deep).is_some());
        assert_eq!(chunked(&index, "+/#", chunk).len(), 2);
        assert!(index.remove(&format!("{deep}/x")).is_some());
        assert_eq!(index.root.children.len(), 1, "the deep chain is pruned");
        index.set(&deep, message(&deep));
        drop(index);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn level() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("c".to_string()),
                Just(String::new()),
                Just("$s".to_string()),
            ]
        }

        fn topic() -> impl Strategy<Value = String> {
            prop::collection::vec(level(), 1..5).prop_map(|levels| levels.join("/"))
        }

        fn filter() -> impl Strategy<Value = String> {
            let level = prop_oneof![3 => level(), 2 => Just("+".to_string())];
            (prop::collection::vec(level, 1..5), any::<bool>()).prop_map(|(mut levels, hash)| {
                if hash {
                    levels.push("#".to_string());
                }
                levels.join("/")
            })
        }

        proptest! {
            /// Chunk by chunk, the match returns each topic that `filter_matches` accepts
            /// exactly once, whatever the chunk sizes.
            #[test]
            fn chunked_match_equals_filter_matches(
                topics in prop::collection::btree_set(topic(), 0..40),
                filter in filter(),
                chunks in prop::collection::vec(1usize..6, 1..8),
            ) {
                let mut index = RetainedIndex::default();
                for topic in &topics {
                    index.set(topic, message(topic));
                }
                let mut cursor = RetainedMatch::new(&filter);
                let mut seen = Vec::new();
                let mut out = Vec::new();
                for call in 0..10_000 {
                    if cursor.is_done() {
                        break;
                    }
                    let chunk = chunks[call % chunks.len()];
                    index.next_chunk(&mut cursor, chunk, Instant::now(), &mut out);
                    prop_assert!(out.len() <= chunk);
                    seen.extend(out.drain(..).map(|m| m.topic().to_string()));
                }
                prop_assert!(cursor.is_done());
                let expected: Vec<String> = topics
                    .iter()
                    .filter(|topic| filter_matches(&filter, topic))
                    .cloned()
                    .collect();
                // In the index's order: level by level, a topic before those below it.
                let mut ordered = seen.clone();
                ordered.sort_by(|a, b| a.split('/').cmp(b.split('/')));
                prop_assert_eq!(&ordered, &seen);
                let seen_set: BTreeSet<String> = seen.iter().cloned().collect();
                prop_assert_eq!(seen_set.len(), seen.len(), "a topic came twice");
                prop_assert_eq!(seen_set, expected.into_iter().collect::<BTreeSet<_>>());
            }

            /// With topics set and removed between chunks: no topic twice, and every topic
            /// present and matching throughout the match is returned.
            #[test]
            fn changes_between_chunks(
                topics in prop::collection::btree_set(topic(), 0..30),
                changes in prop::collection::vec((topic(), any::<bool>()), 0..30),
                filter in filter(),
                chunk in 1usize..4,
            ) {
                let mut index = RetainedIndex::default();
                for topic in &topics {
                    index.set(topic, message(topic));
                }
                let mut stable: BTreeSet<String> = topics
                    .iter()
                    .filter(|topic| filter_matches(&filter, topic))
                    .cloned()
                    .collect();
                let mut cursor = RetainedMatch::new(&filter);
                let mut seen = BTreeSet::new();
                let mut out = Vec::new();
                let mut changes = changes.into_iter();
                for _ in 0..10_000 {
                    if cursor.is_done() {
                        break;
                    }
                    index.next_chunk(&mut cursor, chunk, Instant::now(), &mut out);
                    for message in out.drain(..) {
                        prop_assert!(seen.insert(message.topic().to_string()), "twice");
                    }
                    if let Some((topic, set)) = changes.next() {
                        stable.remove(&topic);
                        if set {
                            index.set(&topic, message(&topic));
                        } else {
                            index.remove(&topic);
                        }
                    }
                }
                prop_assert!(cursor.is_done());
                for topic in &seen {
                    prop_assert!(filter_matches(&filter, topic));
                }
                prop_assert!(stable.is_subset(&seen));
            }
        }
    }
}

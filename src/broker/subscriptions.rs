//! The subscription index: a tree of topic levels with `+` and `#` children, ordinary
//! subscribers and shared subscription groups (`$share/{group}/{filter}`) at each node.

use super::level_tree::{self, LevelNode};
use super::small_map::SmallMap;
use std::cell::Cell;
use std::sync::Arc;

/// The router's numeric name for a session (cheaper to compare and hash than client ids).
pub type SessionKey = u64;

pub use crate::model::Subscription;

/// A subscriber that a topic matched.
#[derive(Debug, Clone)]
pub struct Match {
    pub session: SessionKey,
    pub subscription: Subscription,
    /// The `$share/{group}/{filter}` this match came through, for shared subscriptions.
    pub share: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct SharedGroup {
    /// The whole `$share/{group}/{filter}` string, tagged on deliveries.
    name: Arc<str>,
    members: Vec<(SessionKey, Subscription)>,
    /// Round-robin position. A `Cell` so that matching can walk the tree by shared
    /// reference, several branches at once.
    next: Cell<usize>,
}

#[derive(Debug, Default)]
struct Node {
    children: SmallMap<Box<str>, Node>,
    subscribers: SmallMap<SessionKey, Subscription>,
    shared: SmallMap<Box<str>, SharedGroup>,
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
        self.children.take_values()
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty() && self.shared.is_empty()
    }

    fn holds_more_than_one_child(&self) -> bool {
        !self.subscribers.is_empty() || !self.shared.is_empty() || self.children.len() > 1
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        level_tree::drop_children(self);
    }
}

/// Where a filter is registered: an ordinary filter, or a shared one in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterRef<'a> {
    pub filter: &'a str,
    pub group: Option<&'a str>,
}

impl<'a> FilterRef<'a> {
    /// Splits `$share/{group}/{filter}`; anything else is an ordinary filter.
    pub fn parse(full: &'a str) -> FilterRef<'a> {
        if let Some(rest) = full.strip_prefix("$share/")
            && let Some((group, filter)) = rest.split_once('/')
        {
            return FilterRef {
                filter,
                group: Some(group),
            };
        }
        FilterRef {
            filter: full,
            group: None,
        }
    }
}

/// The subscription index. Every walk (insert, remove, match, drop) is a loop, never a
/// recursion: the depth of the tree is the number of levels of a client's filter.
#[derive(Debug, Default)]
pub struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// Number of subscriptions (ordinary and shared).
    pub fn len(&self) -> usize {
        self.count
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces one session's subscription to `full_filter`; returns true when it
    /// replaced an existing one (MQTT-3.8.4-3: a subscription is replaced, never doubled).
    pub fn insert(
        &mut self,
        full_filter: &str,
        session: SessionKey,
        subscription: Subscription,
    ) -> bool {
        let filter = FilterRef::parse(full_filter);
        let mut node = &mut self.root;
        for level in filter.filter.split('/') {
            node = node.children.get_or_insert_with(level, Node::default);
        }
        let existed = match filter.group {
            None => node.subscribers.insert(session, subscription).is_some(),
            Some(group) => {
                let shared = node.shared.get_or_insert_with(group, || SharedGroup {
                    name: Arc::from(full_filter),
                    ..SharedGroup::default()
                });
                match shared.members.iter_mut().find(|(key, _)| *key == session) {
                    Some(member) => {
                        member.1 = subscription;
                        true
                    }
                    None => {
                        shared.members.push((session, subscription));
                        false
                    }
                }
            }
        };
        if !existed {
            self.count += 1;
        }
        existed
    }

    /// Removes one session's subscription; returns false when there was none. Nodes left
    /// empty on the filter's path are pruned.
    pub fn remove(&mut self, full_filter: &str, session: SessionKey) -> bool {
        let filter = FilterRef::parse(full_filter);
        let Some(node) = self.node_mut(filter.filter) else {
            return false;
        };
        let removed = match filter.group {
            None => node.subscribers.remove(&session).is_some(),
            Some(group) => {
                let Some(shared) = node.shared.get_mut(group) else {
                    return false;
                };
                let before = shared.members.len();
                shared.members.retain(|(key, _)| *key != session);
                let removed = shared.members.len() != before;
                if shared.members.is_empty() {
                    node.shared.remove(group);
                }
                removed
            }
        };
        if node.is_empty() {
            level_tree::prune(&mut self.root, filter.filter);
        }
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// The node of `filter`, if the tree has it.
    fn node_mut(&mut self, filter: &str) -> Option<&mut Node> {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.get_mut(level)?;
        }
        Some(node)
    }

    /// Every subscription matching `topic`, appended to `out`. Shared groups contribute one
    /// member, chosen round-robin among those for which `is_connected` holds (any member
    /// when none is connected, so that its session queues the message).
    pub fn matches(
        &mut self,
        topic: &str,
        is_connected: impl Fn(SessionKey) -> bool,
        out: &mut Vec<Match>,
    ) {
        // A depth-first walk with an explicit stack of (node, where the rest of the topic
        // starts). Each step pops one entry and pushes at most two (`+` and the exact
        // level), so the stack holds at most one entry per level plus one: usual topics fit
        // the inline part and matching does not allocate (it runs for every message).
        let mut stack = WalkStack::new(&self.root);
        stack.push(&self.root, Some(0));
        while let Some((node, rest)) = stack.pop() {
            let Some(start) = rest else {
                collect_node(node, &is_connected, out);
                // "sport/#" also matches "sport" (MQTT 3.1.1 §4.7.1.2).
                if let Some(hash) = node.children.get("#") {
                    collect_node(hash, &is_connected, out);
                }
                continue;
            };
            let remaining = &topic[start..];
            let (level, next) = match remaining.find('/') {
                Some(slash) => (&remaining[..slash], Some(start + slash + 1)),
                None => (remaining, None),
            };
            // Wildcards at the first level do not match topics starting with `$`
            // (MQTT-4.7.2-1).
            let wildcards_apply = !(start == 0 && level.starts_with('$'));
            if level != "+"
                && level != "#"
                && let Some(child) = node.children.get(level)
            {
                stack.push(child, next);
            }
            if wildcards_apply {
                if let Some(hash) = node.children.get("#") {
                    collect_node(hash, &is_connected, out);
                }
                if let Some(plus) = node.children.get("+") {
                    stack.push(plus, next);
                }
            }
        }
    }

    /// Another member of the shared group `share` than `except`, connected, round-robin.
    pub fn pick_other_member(
        &mut self,
        share: &str,
        except: SessionKey,
        is_connected: impl Fn(SessionKey) -> bool,
    ) -> Option<(SessionKey, Subscription)> {
        let filter = FilterRef::parse(share);
        let group = filter.group?;
        let node = self.node_mut(filter.filter)?;
        let shared = node.shared.get(group)?;
        pick_member(shared, |key| key != except && is_connected(key))
    }
}

/// Entries the match walk holds without allocating: enough for topics of up to 16 levels
/// (the walk holds at most one entry per level plus one). Splitting levels on the stack
/// rather than into a `Vec` per message was a measured gain; this keeps it.
const INLINE_LEVELS: usize = 17;

/// The match walk's stack: a fixed array first, a `Vec` only for deeper walks.
struct WalkStack<'a> {
    inline: [(&'a Node, Option<usize>); INLINE_LEVELS],
    len: usize,
    spill: Vec<(&'a Node, Option<usize>)>,
}

impl<'a> WalkStack<'a> {
    fn new(filler: &'a Node) -> WalkStack<'a> {
        WalkStack {
            inline: [(filler, None); INLINE_LEVELS],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, node: &'a Node, rest: Option<usize>) {
        if self.len < INLINE_LEVELS {
            self.inline[self.len] = (node, rest);
            self.len += 1;
        } else {
            self.spill.push((node, rest));
        }
    }

    fn pop(&mut self) -> Option<(&'a Node, Option<usize>)> {
        if let Some(entry) = self.spill.pop() {
            return Some(entry);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

fn pick_member(
    shared: &SharedGroup,
    eligible: impl Fn(SessionKey) -> bool,
) -> Option<(SessionKey, Subscription)> {
    let len = shared.members.len();
    for step in 0..len {
        let index = (shared.next.get() + step) % len;
        let (key, subscription) = shared.members[index];
        if eligible(key) {
            shared.next.set((index + 1) % len);
            return Some((key, subscription));
        }
    }
    None
}

fn collect_node(node: &Node, is_connected: &impl Fn(SessionKey) -> bool, out: &mut Vec<Match>) {
    for (key, subscription) in &node.subscribers {
        out.push(Match {
            session: *key,
            subscription: *subscription,
            share: None,
        });
    }
    for shared in node.shared.values() {
        let chosen = pick_member(shared, is_connected).or_else(|| pick_member(shared, |_| true));
        if let Some((key, subscription)) = chosen {
            out.push(Match {
                session: key,
                subscription,
                share: Some(shared.name.clone()),
            });
        }
    }
}

/// Whether the ordinary filter `filter` matches `topic` (used for retained messages).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false; // MQTT-4.7.2-1
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match filter_level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{QoS, SubscriptionOptions};

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            identifier: None,
        }
    }

    fn matched(tree: &mut SubscriptionTree, topic: &str) -> Vec<SessionKey> {
        let mut out = Vec::new();
        tree.matches(topic, |_| true, &mut out);
        let mut keys: Vec<_> = out.iter().map(|m| m.session).collect();
        keys.sort();
        keys
    }

    #[test]
    fn wildcards_match_levels() {
        let mut tree = SubscriptionTree::default();
        tree.insert("a/+/c", 1, sub(QoS::AtMostOnce));
        tree.insert("a/#", 2, sub(QoS::AtMostOnce));
        tree.insert("#", 3, sub(QoS::AtMostOnce));
        tree.insert("a/b", 4, sub(QoS::AtMostOnce));
        tree.insert("+/+", 5, sub(QoS::AtMostOnce));
        assert_eq!(matched(&mut tree, "a/b/c"), vec![1, 2, 3]);
        assert_eq!(matched(&mut tree, "a/b"), vec![2, 3, 4, 5]);
        assert_eq!(matched(&mut tree, "a"), vec![2, 3]);
        assert_eq!(matched(&mut tree, "b/x/c"), vec![3]);
    }

    #[test]
    fn topics_longer_than_the_stack_split_match_the_same_way() {
        for levels in [
            INLINE_LEVELS - 1,
            INLINE_LEVELS,
            INLINE_LEVELS + 1,
            3 * INLINE_LEVELS,
        ] {
            let topic = vec!["x"; levels].join("/");
            let mut tree = SubscriptionTree::default();
            tree.insert(&topic, 1, sub(QoS::AtMostOnce));
            tree.insert(&format!("{topic}/#"), 2, sub(QoS::AtMostOnce));
            tree.insert(
                &format!("+/{}", vec!["x"; levels - 1].join("/")),
                3,
                sub(QoS::AtMostOnce),
            );
            tree.insert(&format!("{topic}/x"), 4, sub(QoS::AtMostOnce));
            assert_eq!(matched(&mut tree, &topic), vec![1, 2, 3], "{levels} levels");
        }
    }

    #[test]
    fn dollar_topics_skip_first_level_wildcards() {
        // MQTT-4.7.2-1
        let mut tree = SubscriptionTree::default();
        tree.insert("#", 1, sub(QoS::AtMostOnce));
        tree.insert("+/broker", 2, sub(QoS::AtMostOnce));
        tree.insert("$SYS/#", 3, sub(QoS::AtMostOnce));
        tree.insert("$SYS/+", 4, sub(QoS::AtMostOnce));
        assert_eq!(matched(&mut tree, "$SYS/broker"), vec![3, 4]);
    }

    #[test]
    fn replace_and_remove() {
        let mut tree = SubscriptionTree::default();
        assert!(!tree.insert("a/b", 1, sub(QoS::AtMostOnce)));
        assert!(tree.insert("a/b", 1, sub(QoS::ExactlyOnce)));
        assert_eq!(tree.len(), 1);
        let mut out = Vec::new();
        tree.matches("a/b", |_| true, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].subscription.options.qos, QoS::ExactlyOnce);
        assert!(tree.remove("a/b", 1));
        assert!(!tree.remove("a/b", 1));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty());
    }

    #[test]
    fn shared_groups_round_robin_among_connected() {
        let mut tree = SubscriptionTree::default();
        tree.insert("$share/g/a/+", 1, sub(QoS::AtLeastOnce));
        tree.insert("$share/g/a/+", 2, sub(QoS::AtLeastOnce));
        tree.insert("$share/g/a/+", 3, sub(QoS::AtLeastOnce));
        let mut picks = Vec::new();
        for _ in 0..4 {
            let mut out = Vec::new();
            tree.matches("a/x", |key| key != 2, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(&*out[0].share.clone().unwrap(), "$share/g/a/+");
            picks.push(out[0].session);
        }
        assert_eq!(picks, vec![1, 3, 1, 3]);
        assert_eq!(
            tree.pick_other_member("$share/g/a/+", 1, |_| true)
                .map(|m| m.0),
            Some(2)
        );
        assert!(tree.remove("$share/g/a/+", 1));
        assert_eq!(tree.len(), 2);
    }

    /// A filter of `levels` empty levels, like the 60,000 `/` a hostile client sends.
    fn deep(levels: usize) -> String {
        "/".repeat(levels - 1)
    }

    #[test]
    fn deep_trees_are_matched_removed_and_dropped_without_recursion() {
        // 100,000 levels: a recursive walk would overflow the test thread's 2 MiB stack.
        let filter = deep(100_000);
        let mut tree = SubscriptionTree::default();
        tree.insert(&filter, 1, sub(QoS::AtMostOnce));
        tree.insert(&format!("{filter}/#"), 2, sub(QoS::AtMostOnce));
        tree.insert(&format!("+{filter}"), 3, sub(QoS::AtMostOnce));
        tree.insert(&format!("$share/g/{filter}"), 4, sub(QoS::AtMostOnce));
        assert_eq!(matched(&mut tree, &filter), vec![1, 2, 3, 4]);
        assert_eq!(matched(&mut tree, &format!("{filter}/x")), vec![2]);
        assert_eq!(matched(&mut tree, &deep(99_999)), Vec::<SessionKey>::new());
        assert_eq!(
            tree.pick_other_member(&format!("$share/g/{filter}"), 5, |_| true)
                .map(|m| m.0),
            Some(4)
        );
        assert!(tree.remove(&filter, 1));
        assert!(!tree.remove(&filter, 1));
        assert_eq!(matched(&mut tree, &filter), vec![2, 3, 4]);
        assert!(tree.remove(&format!("{filter}/#"), 2));
        assert!(tree.remove(&format!("$share/g/{filter}"), 4));
        assert!(tree.remove(&format!("+{filter}"), 3));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty(), "removing prunes the whole path");
        // Dropping a tree that still holds deep filters.
        let mut tree = SubscriptionTree::default();
        tree.insert(&filter, 1, sub(QoS::AtMostOnce));
        tree.insert(&format!("a{filter}"), 2, sub(QoS::AtMostOnce));
        drop(tree);
    }

    #[test]
    fn removing_a_deep_filter_keeps_what_shares_its_path() {
        let mut tree = SubscriptionTree::default();
        tree.insert("a/b", 1, sub(QoS::AtMostOnce));
        tree.insert("a/b/c/d/e", 2, sub(QoS::AtMostOnce));
        tree.insert("a/x/c/d/e", 3, sub(QoS::AtMostOnce));
        assert!(tree.remove("a/b/c/d/e", 2));
        assert_eq!(matched(&mut tree, "a/b"), vec![1]);
        assert_eq!(matched(&mut tree, "a/x/c/d/e"), vec![3]);
        assert!(
            tree.node_mut("a/b/c").is_none(),
            "the empty chain is pruned"
        );
        assert!(tree.remove("a/b", 1));
        assert!(tree.node_mut("a/b").is_none());
        assert!(tree.node_mut("a/x/c/d/e").is_some());
        assert!(tree.remove("a/x/c/d/e", 3));
        assert!(tree.root.is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn topic_level() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just(String::new()),
                Just("$s".to_string()),
            ]
        }

        fn topic() -> impl Strategy<Value = String> {
            prop::collection::vec(topic_level(), 1..6).prop_map(|levels| levels.join("/"))
        }

        fn filter() -> impl Strategy<Value = String> {
            let level = prop_oneof![
                3 => topic_level(),
                2 => Just("+".to_string()),
            ];
            (prop::collection::vec(level, 1..6), any::<bool>()).prop_map(|(mut levels, hash)| {
                if hash {
                    levels.push("#".to_string());
                }
                levels.join("/")
            })
        }

        proptest! {
            /// The tree finds exactly the filters that `filter_matches` accepts, before and
            /// after removing some of them.
            #[test]
            fn tree_matches_agree_with_filter_matches(
                filters in prop::collection::vec(filter(), 0..24),
                topics in prop::collection::vec(topic(), 1..12),
                removed in prop::collection::vec(any::<bool>(), 24),
            ) {
                let mut tree = SubscriptionTree::default();
                for (key, filter) in filters.iter().enumerate() {
                    tree.insert(filter, key as SessionKey, sub(QoS::AtMostOnce));
                }
                for topic in &topics {
                    let expected: Vec<SessionKey> = (0..filters.len())
                        .filter(|&key| filter_matches(&filters[key], topic))
                        .map(|key| key as SessionKey)
                        .collect();
                    prop_assert_eq!(matched(&mut tree, topic), expected, "topic {}", topic);
                }
                for (key, filter) in filters.iter().enumerate() {
                    if removed[key] {
                        prop_assert!(tree.remove(filter, key as SessionKey));
                    }
                }
                for topic in &topics {
                    let expected: Vec<SessionKey> = (0..filters.len())
                        .filter(|&key| !removed[key] && filter_matches(&filters[key], topic))
                        .map(|key| key as SessionKey)
                        .collect();
                    prop_assert_eq!(matched(&mut tree, topic), expected, "topic {}", topic);
                }
                for (key, filter) in filters.iter().enumerate() {
                    if !removed[key] {
                        prop_assert!(tree.remove(filter, key as SessionKey));
                    }
                }
                prop_assert!(tree.is_empty());
                prop_assert!(tree.root.is_empty());
            }
        }
    }

    #[test]
    fn filter_matching_for_retained() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("a/b", "a"));
        assert!(filter_matches("+/+", "/x"));
    }
}
